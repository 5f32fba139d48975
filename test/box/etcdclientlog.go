package box

import (
	"sync"
	_ "unsafe" // go:linkname

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	_ "k8s.io/apiserver/pkg/storage/storagebackend/factory" // holds apiserverEtcdClientLogger
)

// The in-process kube-apiserver's etcd clients all log through this one
// logger, which its storage factory builds at start-up to write JSON to the
// process's stderr (the test's output): retries, leader changes and members
// going away, which the box's faults cause on purpose. It has no setting, so
// the box reaches it by name and points it at the box's log.
//
//go:linkname apiserverEtcdClientLogger k8s.io/apiserver/pkg/storage/storagebackend/factory.etcd3ClientLogger
var apiserverEtcdClientLogger *zap.Logger

var etcdClientLogOnce sync.Once

// etcdClientLogger is the logger of every etcd client made in this process
// by the box (its own and the apiserver's): etcd's JSON lines at info and
// above, named etcd-client as etcd names them, written to the current box's
// log (see klogf).
func etcdClientLogger() *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(boxLogWriter{}), zapcore.InfoLevel)
	return zap.New(core).Named("etcd-client")
}

// quietEtcdClients sends the apiserver's etcd client logs to the box's log.
// The apiserver reads the logger whenever it makes a client, from any box
// running in the process, so it is set once, before the first apiserver
// starts; the writer follows the current box.
func quietEtcdClients() {
	etcdClientLogOnce.Do(func() { apiserverEtcdClientLogger = etcdClientLogger() })
}
