// The box's own tests: that what the box simulates behaves as on a cluster,
// seen through the real apiserver, etcd, the hosts' tools and a third-party
// kubectl. Tests of the oc-recover binary and libraries against the box are
// in test/e2e.
package box_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

var (
	// tools runs the kubectl TestMain built.
	tools boxtest.Tools
	// shared is a box for tests that do not change the cluster's health.
	shared *box.Box
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	suite, err := boxtest.StartSuite("oc-recover-box-bin-", boxtest.BuildKubectl)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer suite.Stop()
	tools, shared = suite.Tools, suite.Shared
	return m.Run()
}
