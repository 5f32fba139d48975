package box

import (
	"context"
	"fmt"
)

// AddHost boots a new host the way an administrator builds one by hand on
// user-provisioned infrastructure, with no Machine: its kubelet registers
// the Node (a control-plane node when master), and on a control-plane host
// the etcd operator's installer and member controller take it from there.
func (b *Box) AddHost(ctx context.Context, name string, master bool) (*Node, error) {
	if b.Node(name) != nil {
		return nil, fmt.Errorf("a host named %s already exists", name)
	}
	return b.newHost(ctx, name, master, "")
}
