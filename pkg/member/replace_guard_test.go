package member

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// overrides is etcd/cluster's spec.unsupportedConfigOverrides as a map,
// nil when it is unset or null.
func (f *fakeCluster) overrides(t *testing.T) map[string]any {
	t.Helper()
	raw := f.etcdCluster(t).Spec.UnsupportedConfigOverrides.Raw
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("spec.unsupportedConfigOverrides %s: %v", raw, err)
	}
	return m
}

// startedRecord is a machine replacement that needs the override, as the
// record step left it on etcd/cluster.
func startedRecord(t *testing.T, f *fakeCluster) *Record {
	t.Helper()
	rec := machineRecord(true)
	if err := writeRecord(context.Background(), f.operator, rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// The override is set next to the overrides already there; what was there
// is recorded once (a resumed run does not record its own override as the
// original); at the end exactly that is put back and the record removed.
func TestQuorumGuardIsLiftedAndPutBackAsItWas(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(`{"foo":"bar"}`)
	p := f.replacement(startedRecord(t, f))
	if done, err := p.overrideDone(ctx); err != nil || done {
		t.Fatalf("before: done %v, %v; want not done", done, err)
	}
	var out bytes.Buffer
	if err := p.setOverride(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"foo": "bar", unsafeEtcdOverride: true}; !reflect.DeepEqual(f.overrides(t), want) {
		t.Errorf("overrides while lifted: %v, want %v", f.overrides(t), want)
	}
	if want := "  etcd/cluster spec.unsupportedConfigOverrides.useUnsupportedUnsafeNonHANonProductionUnstableEtcd=true (until the end of the replacement)\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if done, err := p.overrideDone(ctx); err != nil || !done {
		t.Errorf("after: done %v, %v; want done", done, err)
	}

	// A re-run reads the record and sets the override again.
	rec, err := ReadRecord(ctx, f.operator)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.OverrideSet || string(rec.OriginalOverrides) != `{"foo":"bar"}` {
		t.Fatalf("recorded: set %v, original %s; want set, {\"foo\":\"bar\"}", rec.OverrideSet, rec.OriginalOverrides)
	}
	p = f.replacement(rec)
	if err := p.setOverride(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := ReadRecord(ctx, f.operator); string(rec.OriginalOverrides) != `{"foo":"bar"}` {
		t.Errorf("a second run recorded %s as the original", rec.OriginalOverrides)
	}

	out.Reset()
	if err := p.finish(ctx, &out, true); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"foo": "bar"}; !reflect.DeepEqual(f.overrides(t), want) {
		t.Errorf("overrides put back: %v, want %v", f.overrides(t), want)
	}
	if rec, err := ReadRecord(ctx, f.operator); err != nil || rec != nil {
		t.Errorf("record after success: %+v, %v; want removed", rec, err)
	}
	if want := "  etcd/cluster spec.unsupportedConfigOverrides put back to {\"foo\":\"bar\"}\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

// An override the administrator had set already is not taken for ours:
// the step still runs, so that it is recorded, and it stays after the end.
func TestQuorumGuardAnAdministratorLiftedStaysLifted(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}`)
	p := f.replacement(startedRecord(t, f))
	if done, err := p.overrideDone(ctx); err != nil || done {
		t.Fatalf("done %v, %v; want not done while the record does not say it is ours", done, err)
	}
	if err := p.setOverride(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := p.finish(ctx, &bytes.Buffer{}, true); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{unsafeEtcdOverride: true}; !reflect.DeepEqual(f.overrides(t), want) {
		t.Errorf("overrides after the end: %v, want %v", f.overrides(t), want)
	}
}

// With no overrides before, none are left after.
func TestQuorumGuardPutBackToNothing(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster("")
	p := f.replacement(startedRecord(t, f))
	if err := p.setOverride(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := p.finish(ctx, &out, true); err != nil {
		t.Fatal(err)
	}
	if got := f.overrides(t); got != nil {
		t.Errorf("overrides after the end: %v, want none", got)
	}
	if !strings.Contains(out.String(), "put back to null") {
		t.Errorf("output %q does not say what was put back", out.String())
	}
}

// liftedEarlier is a replacement whose earlier run lifted the guard and
// then died before it could put it back (kill -9, a lost laptop).
func liftedEarlier(t *testing.T) *fakeCluster {
	t.Helper()
	f := newFakeCluster(`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}`)
	rec := machineRecord(true)
	rec.OverrideSet, rec.OriginalOverrides = true, json.RawMessage("null")
	if err := writeRecord(context.Background(), f.operator, rec); err != nil {
		t.Fatal(err)
	}
	return f
}

// When a step fails, Run puts the guard back and keeps the record, marked
// as put back, for the next run to continue from. The step here fails
// because etcd cannot be reached (the fake cluster has no etcd).
func TestRunPutsTheQuorumGuardBackWhenAStepFails(t *testing.T) {
	ctx := context.Background()
	f := liftedEarlier(t)
	rec, err := ReadRecord(ctx, f.operator)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = f.replacement(rec).Run(ctx, &out)
	if err == nil || !strings.Contains(err.Error(), "etcd-client") {
		t.Fatalf("err = %v, want the member removal's check to fail on the missing etcd client certificate", err)
	}
	if got := f.overrides(t); got != nil {
		t.Errorf("overrides after the failure: %v, want none, as before the replacement", got)
	}
	after, err := ReadRecord(ctx, f.operator)
	if err != nil || after == nil {
		t.Fatalf("record after the failure: %v, %v; want it kept", after, err)
	}
	if after.OverrideSet || len(after.OriginalOverrides) != 0 {
		t.Errorf("record after the failure: set %v, original %s; want marked as put back", after.OverrideSet, after.OriginalOverrides)
	}
	want := "[1/9] record the replacement on etcd/cluster: already done\n" +
		"  etcd/cluster spec.unsupportedConfigOverrides put back to null\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

// When even putting the guard back fails, the error says so and what to
// do by hand, after the step's own error.
func TestRunSaysWhenTheQuorumGuardCouldNotBePutBack(t *testing.T) {
	f := liftedEarlier(t)
	rec, err := ReadRecord(context.Background(), f.operator)
	if err != nil {
		t.Fatal(err)
	}
	f.operator.PrependReactor("patch", "etcds", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the API server is unavailable")
	})
	err = f.replacement(rec).Run(context.Background(), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "etcd-client") ||
		!strings.Contains(err.Error(), "; and putting the quorum guard back failed: merge-patch etcd/cluster") ||
		!strings.Contains(err.Error(), "the API server is unavailable (set etcd/cluster spec.unsupportedConfigOverrides back by hand)") {
		t.Errorf("err = %v", err)
	}
	if got := f.overrides(t); got[unsafeEtcdOverride] != true {
		t.Errorf("overrides %v: the failed patch changed them", got)
	}
}

// The quorum guard goes back exactly as it was, whatever it was.
func TestRestorePatch(t *testing.T) {
	cases := map[string]struct {
		original string
		want     string
	}{
		"nothing before":        {"null", `{"spec":{"unsupportedConfigOverrides":null}}`},
		"other overrides":       {`{"foo":"bar"}`, `{"spec":{"unsupportedConfigOverrides":{"foo":"bar","useUnsupportedUnsafeNonHANonProductionUnstableEtcd":null}}}`},
		"override already true": {`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}`, `{"spec":{"unsupportedConfigOverrides":{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}}}`},
	}
	for name, c := range cases {
		patch, err := restorePatch(json.RawMessage(c.original))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := mustJSON(patch); got != c.want {
			t.Errorf("%s: %s, want %s", name, got, c.want)
		}
	}
	if _, err := restorePatch(json.RawMessage(`[1]`)); err == nil || errors.Unwrap(err) == nil {
		t.Error("a recorded value that is not an object was accepted")
	}
}
