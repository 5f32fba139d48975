package box

import clientv3 "go.etcd.io/etcd/client/v3"

// EtcdClient connects to the box's etcd members directly (not through the
// API), with the etcd-client identity: for tests and benchmarks that set up
// or inspect data underneath the apiserver.
func (b *Box) EtcdClient() (*clientv3.Client, error) {
	return b.etcdPKI.newEtcdClient(b.etcdEndpoints()...)
}

// EtcdClientFor connects to one member's client URL only: a linearizable
// read through it tells whether that member is healthy, as etcdctl
// endpoint health does.
func (b *Box) EtcdClientFor(url string) (*clientv3.Client, error) {
	return b.etcdPKI.newEtcdClient(url)
}
