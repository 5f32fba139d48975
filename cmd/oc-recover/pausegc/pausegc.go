// Package pausegc turns the garbage collector off while the program's
// packages initialise; main turns it back on with Resume.
//
// The plugin links client-go's and OpenShift's API schemes, the etcd client
// and their protobuf registries; initialising them allocates about 6 MB
// before main runs, and with the default GOGC that sets off two collections
// that make every start (even `oc recover --help`) measurably slower. None of
// that memory is garbage. Go initialises a package before the packages that
// import it and otherwise in import-path order, so this one, which imports
// only runtime/debug, runs before most of them.
package pausegc

import "runtime/debug"

// percent is the GOGC setting in force before the pause (GOGC from the
// environment, 100 by default).
var percent = debug.SetGCPercent(-1)

// Resume puts the collector back as it was configured.
func Resume() {
	debug.SetGCPercent(percent)
}
