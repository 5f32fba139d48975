// Package etcd holds oc-recover's etcd knowledge: reaching the cluster's
// members through the API, and checking snapshot files on the admin's disk.
//
// Reaching the members: Connect (connect.go) port-forwards to an etcd pod
// and opens a client/v3 client with the cluster's own etcd client
// certificate; Members, Remove and EndpointHealth (members.go) are the one
// way the rest of oc-recover reads and changes membership. On disk:
// VerifySnapshot (snapshot.go) and the bbolt reader (bolt.go) check a
// snapshot file and test-restore it.
package etcd
