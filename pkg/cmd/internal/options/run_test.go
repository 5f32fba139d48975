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
	args        []string
	completeErr error
	validateErr error
}

func (c *recordingCommand) Complete(_ genericclioptions.RESTClientGetter, args []string) error {
	c.calls = append(c.calls, "complete")
	c.args = args
	return c.completeErr
}

func (c *recordingCommand) Validate() error {
	c.calls = append(c.calls, "validate")
	return c.validateErr
}

func (c *recordingCommand) Run(context.Context) error {
	c.calls = append(c.calls, "run")
	return nil
}

func TestRunECompletesThenValidatesThenRuns(t *testing.T) {
	bad := errors.New("bad")
	for _, tc := range []struct {
		name string
		c    *recordingCommand
		want string
		err  error
	}{
		{"all well", &recordingCommand{}, "complete validate run", nil},
		{"bad arguments: nothing validated or run", &recordingCommand{completeErr: bad}, "complete", bad},
		{"bad flags: nothing run", &recordingCommand{validateErr: bad}, "complete validate", bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			cmd.SetContext(context.Background())
			err := RunE(genericclioptions.NewConfigFlags(false), tc.c)(cmd, []string{"master-0"})
			if got := strings.Join(tc.c.calls, " "); got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("calls %q err %v, want %q %v", got, err, tc.want, tc.err)
			}
			if len(tc.c.args) != 1 || tc.c.args[0] != "master-0" {
				t.Errorf("Complete got args %q, want the command's arguments", tc.c.args)
			}
		})
	}
}
