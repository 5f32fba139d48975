package member

import (
	"context"
	"io"

	"github.com/oc-recover/oc-recover/pkg/runbook"
)

// The machine procedure's Machine steps, as a MachineSwap kept in the
// replacement's record.

// swap is the record's Machine swap.
func (p *Replacement) swap() *MachineSwap {
	r := p.Record
	return &MachineSwap{Node: r.Node, Machine: r.Machine, NewMachine: r.NewMachine, Saved: r.Saved}
}

// prepareMachine saves the copy of the node's Machine that will replace it
// in the record (see PlanMachineSwap).
func (p *Replacement) prepareMachine(ctx context.Context) error {
	s, err := PlanMachineSwap(ctx, p.c.Machine, p.opts.Node, p.Record.Machine)
	if err != nil {
		return err
	}
	p.Record.NewMachine, p.Record.Saved = s.NewMachine, s.Saved
	return nil
}

func (p *Replacement) deleteMachineStep() runbook.Step {
	return p.swap().DeleteStep(p.c.Machine, p.poll)
}

func (p *Replacement) createMachineStep() runbook.Step {
	return p.swap().CreateStep(p.c.Kube, p.c.Machine, p.poll)
}

func (p *Replacement) oldMachineGone(ctx context.Context) (bool, error) {
	return p.swap().OldGone(ctx, p.c.Machine)
}

func (p *Replacement) deleteOldMachine(ctx context.Context, out io.Writer) error {
	return p.swap().DeleteOld(ctx, p.c.Machine, p.poll, out)
}

func (p *Replacement) replacementNode(ctx context.Context) (string, error) {
	return p.swap().NewNode(ctx, p.c.Machine)
}

func (p *Replacement) newMachineRunning(ctx context.Context) (bool, error) {
	return p.swap().NewRunning(ctx, p.c.Kube, p.c.Machine)
}

func (p *Replacement) createNewMachine(ctx context.Context, out io.Writer) error {
	return p.swap().CreateNew(ctx, p.c.Kube, p.c.Machine, p.poll, out)
}
