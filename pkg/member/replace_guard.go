package member

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/openshift"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

// unsafeEtcdOverride is the key of the etcd quorum guard override.
const unsafeEtcdOverride = openshift.QuorumGuardOverride

func (p *Replacement) liftGuardStep() runbook.Step {
	return runbook.Step{
		Title:  "lift the etcd quorum guard for the duration",
		Detail: []string{fmt.Sprintf("merge-patch etcd/cluster %s (put back as it was at the end)", mustJSON(overridePatch()))},
		Done:   p.overrideDone,
		Run:    p.setOverride,
	}
}

// finishStep is the last step on success; Run's deferred finish does the
// same after a failure, keeping the record.
func (p *Replacement) finishStep() runbook.Step {
	return runbook.Step{
		Title:  "put the quorum guard back and remove the record",
		Detail: []string{"merge-patch etcd/cluster spec.unsupportedConfigOverrides back to what it was; remove annotation " + RecordAnnotation},
		Run:    func(ctx context.Context, out io.Writer) error { return p.finish(ctx, out, true) },
	}
}

func (p *Replacement) overrideDone(ctx context.Context) (bool, error) {
	e, err := p.c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("read etcd/cluster: %w", err)
	}
	return openshift.QuorumGuardLifted(e.Spec.UnsupportedConfigOverrides.Raw) && p.Record.OverrideSet, nil
}

func (p *Replacement) setOverride(ctx context.Context, out io.Writer) error {
	e, err := p.c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read etcd/cluster: %w", err)
	}
	if !p.Record.OverrideSet {
		// Remember what was there before, once: on a resumed run the
		// override may be ours already.
		p.Record.OriginalOverrides = json.RawMessage("null")
		if raw := e.Spec.UnsupportedConfigOverrides.Raw; len(raw) > 0 {
			p.Record.OriginalOverrides = append(json.RawMessage(nil), raw...)
		}
		p.Record.OverrideSet = true
		if err := writeRecord(ctx, p.c.Operator, p.Record); err != nil {
			return err
		}
	}
	if err := patchEtcd(ctx, p.c.Operator, overridePatch()); err != nil {
		return err
	}
	fmt.Fprintf(out, "  etcd/cluster spec.unsupportedConfigOverrides.%s=true (until the end of the replacement)\n", unsafeEtcdOverride)
	return nil
}

// finish puts the quorum guard back as it was, and on success removes the
// record. After a failure the record stays (the re-run continues from it)
// with the override marked as put back.
func (p *Replacement) finish(ctx context.Context, out io.Writer, success bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rec, err := ReadRecord(ctx, p.c.Operator)
	if err != nil {
		return err
	}
	if rec != nil && rec.OverrideSet {
		patch, err := restorePatch(rec.OriginalOverrides)
		if err != nil {
			return err
		}
		if err := patchEtcd(ctx, p.c.Operator, patch); err != nil {
			return err
		}
		fmt.Fprintf(out, "  etcd/cluster spec.unsupportedConfigOverrides put back to %s\n", string(orNull(rec.OriginalOverrides)))
		rec.OverrideSet, rec.OriginalOverrides = false, nil
		p.Record.OverrideSet, p.Record.OriginalOverrides = false, nil
		if !success {
			return writeRecord(ctx, p.c.Operator, rec)
		}
	}
	if success && rec != nil {
		return deleteRecord(ctx, p.c.Operator)
	}
	return nil
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// overridePatch sets the quorum-guard override, keeping the other
// unsupported overrides.
func overridePatch() map[string]any { return openshift.LiftQuorumGuardPatch() }

// restorePatch puts spec.unsupportedConfigOverrides back to original.
func restorePatch(original json.RawMessage) (map[string]any, error) {
	return openshift.PutBackOverridesPatch(original)
}

func mustJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}
