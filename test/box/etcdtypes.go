package box

import (
	"net/url"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

type urlT = url.URL
type transportTLSInfo = transport.TLSInfo

func parseURL(s string) (url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return url.URL{}, err
	}
	return *u, nil
}
