package restore

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/oc-recover/oc-recover/pkg/member"
)

// replaceLost replaces the Machine of every lost control-plane node, one
// at a time, before etcd is redeployed: "Restoring to a previous cluster
// state" deletes and recreates the machines of the hosts that are not the
// recovery host, then forces the etcd redeployment, which gives each new
// control-plane node its member. The steps are member replace's (a copy
// of the Machine saved, the old one deleted, the copy created under the
// next free name and waited for until its node is Ready); each swap is
// recorded before its old Machine is deleted, so a re-run loses nothing.
func replaceLost(ctx context.Context, c Clients, rec *Record, ev Events) error {
	if len(rec.Lost) == 0 {
		return nil
	}
	// Every lost node's Machine is found before any is deleted.
	for _, node := range rec.Lost {
		if rec.NewNodes[node] != "" || rec.swap(node) != nil {
			continue
		}
		machine := ""
		if c.Machine != nil {
			var err error
			if machine, err = member.MachineOfNode(ctx, c.Machine, node); err != nil {
				return err
			}
		}
		if machine == "" {
			return fmt.Errorf("control-plane node %s is lost and no Machine of the Machine API holds it, so this command cannot replace it: add a control-plane host the way the cluster was installed (\"Replacing an unhealthy etcd member whose machine is not running or whose node is not ready\", OpenShift documentation, Backup and restore), then run this command again", node)
		}
		var taken []string
		for _, s := range rec.Swaps {
			taken = append(taken, s.NewMachine)
		}
		s, err := member.PlanMachineSwap(ctx, c.Machine, node, machine, taken...)
		if err != nil {
			return err
		}
		rec.Swaps = append(rec.Swaps, *s)
		if err := WriteRecord(ctx, c, rec); err != nil {
			return err
		}
	}
	poll := member.PollEvery(2 * time.Second)
	out := sayWriter{ev}
	for _, node := range rec.Lost {
		if rec.NewNodes[node] != "" {
			continue
		}
		s := rec.swap(node)
		gone, err := s.OldGone(ctx, c.Machine)
		if err != nil {
			return err
		}
		if !gone {
			ev.say("%s is lost: deleting its machine %s, to be replaced by %s", node, s.Machine, s.NewMachine)
			if err := s.DeleteOld(ctx, c.Machine, poll, out); err != nil {
				return err
			}
		}
		running, err := s.NewRunning(ctx, c.Kube, c.Machine)
		if err != nil {
			return err
		}
		if !running {
			if err := s.CreateNew(ctx, c.Kube, c.Machine, poll, out); err != nil {
				return err
			}
		}
		newNode, err := s.NewNode(ctx, c.Machine)
		if err != nil {
			return err
		}
		rec.NewNodes[node] = newNode
		if err := WriteRecord(ctx, c, rec); err != nil {
			return err
		}
		ev.say("%s is replaced by node %s (machine %s)", node, newNode, s.NewMachine)
	}
	return nil
}

// swap is the recorded Machine swap of a lost node, nil if none.
func (r *Record) swap(node string) *member.MachineSwap {
	for i := range r.Swaps {
		if r.Swaps[i].Node == node {
			return &r.Swaps[i]
		}
	}
	return nil
}

// sayWriter passes a machine swap's progress lines to Events.
type sayWriter struct{ ev Events }

func (w sayWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			w.ev.say("%s", line)
		}
	}
	return len(p), nil
}

var _ io.Writer = sayWriter{}
