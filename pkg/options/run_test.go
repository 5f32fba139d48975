package options

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

type recordingCommand struct {
	calls       []string
	validateErr error
	completeErr error
}

func (c *recordingCommand) Validate() error {
	c.calls = append(c.calls, "validate")
	return c.validateErr
}

func (c *recordingCommand) Complete(genericclioptions.RESTClientGetter) error {
	c.calls = append(c.calls, "complete")
	return c.completeErr
}

func (c *recordingCommand) Run(context.Context) error {
	c.calls = append(c.calls, "run")
	return nil
}

func TestRunEValidatesThenCompletesThenRuns(t *testing.T) {
	bad := errors.New("bad")
	for _, tc := range []struct {
		name string
		c    *recordingCommand
		want string
		err  error
	}{
		{"all well", &recordingCommand{}, "validate complete run", nil},
		{"bad flags: no kubeconfig loaded", &recordingCommand{validateErr: bad}, "validate", bad},
		{"no clients: nothing run", &recordingCommand{completeErr: bad}, "validate complete", bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			cmd.SetContext(context.Background())
			err := RunE(genericclioptions.NewConfigFlags(false), tc.c)(cmd, nil)
			if got := strings.Join(tc.c.calls, " "); got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("calls %q err %v, want %q %v", got, err, tc.want, tc.err)
			}
		})
	}
}
