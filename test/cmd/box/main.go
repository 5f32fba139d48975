// Command box runs the cluster-in-a-box as a long-lived local process, for
// `make demo` and for trying oc-recover by hand. Ctrl-C stops it cleanly.
//
//	go run ./cmd/box [--masters 3] [--workers 0] [--kubeconfig-out FILE] [--exit] [-- COMMAND ARGS...]
//
// Commands after "--" run once the box is up, with KUBECONFIG pointing at it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/oc-recover/oc-recover/test/box"
)

func main() {
	os.Exit(run())
}

func run() int {
	masters := flag.Int("masters", 3, "control-plane nodes (each with an etcd member)")
	workers := flag.Int("workers", 0, "worker nodes")
	kubeconfigOut := flag.String("kubeconfig-out", "", "also write the administrator's kubeconfig here")
	exit := flag.Bool("exit", false, "stop after running the commands instead of waiting for Ctrl-C")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("Starting the cluster-in-a-box ...")
	started := time.Now()
	b, err := box.Start(ctx, box.Options{Masters: *masters, Workers: *workers})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	defer func() {
		fmt.Println("Stopping the cluster-in-a-box ...")
		b.Stop()
		fmt.Println("Stopped; nothing left behind.")
	}()
	kubeconfig := b.Kubeconfig
	if *kubeconfigOut != "" {
		abs, _ := filepath.Abs(*kubeconfigOut)
		if err := b.WriteAdminKubeconfig(abs); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			return 1
		}
		kubeconfig = abs
	}
	var names []string
	for _, n := range b.NodeList() {
		names = append(names, fmt.Sprintf("%s (%s)", n.Name, n.IP))
	}
	fmt.Printf("Up in %.1fs: OpenShift 4.14.8 control plane, real kube-apiserver at %s, real etcd on %s.\n\n",
		time.Since(started).Seconds(), b.APIServerURL, strings.Join(names, ", "))
	fmt.Printf("Point oc recover / kubectl recover at it:\n\n  export KUBECONFIG=%s\n  export PATH=%s:$PATH\n  kubectl recover --help      # or: oc recover --help\n\n",
		kubeconfig, binDir())

	for _, args := range commands(flag.Args()) {
		fmt.Printf("$ %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Printf("(%v)\n", err)
		}
		fmt.Println()
	}
	if *exit {
		return 0
	}
	fmt.Println("The box is running; Ctrl-C stops it.")
	<-ctx.Done()
	return 0
}

// commands splits "a b ';' c d" into [[a b] [c d]].
func commands(args []string) [][]string {
	var out [][]string
	var cur []string
	for _, a := range args {
		if a == ";" {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, a)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// binDir is where `make build` puts the plugin.
func binDir() string {
	wd, _ := os.Getwd()
	return filepath.Join(filepath.Dir(wd), "bin")
}
