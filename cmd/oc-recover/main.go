// Command oc-recover is the `oc recover` / `kubectl recover` plugin. Install
// it on PATH as oc-recover and/or kubectl-recover.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/oc-recover/oc-recover/cmd/oc-recover/pausegc"
	"github.com/oc-recover/oc-recover/pkg/cmd"
)

func main() {
	pausegc.Resume()

	// The first SIGINT/SIGTERM cancels ctx so the running command can remove
	// its debug pods and namespaces; after that the default handling is back,
	// so a second Ctrl-C kills the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()

	// client-go reports errors it cannot return (a port-forward's tunnel
	// closing as its client disconnects) through this hook; they are noise
	// at 3 a.m. and belong at -v=2, not on the administrator's screen.
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{func(_ context.Context, err error, msg string, keysAndValues ...any) {
		klog.V(2).ErrorS(err, msg, keysAndValues...)
	}}

	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	code := cmd.Execute(ctx, cmd.NewRootCmd(streams))
	klog.Flush()
	os.Exit(code)
}
