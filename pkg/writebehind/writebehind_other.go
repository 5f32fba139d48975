//go:build !linux

package writebehind

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("write-behind not supported on this system")

func startWriteback(*os.File, int64, int64) error  { return errUnsupported }
func finishWriteback(*os.File, int64, int64) error { return errUnsupported }
func dropCache(*os.File, int64, int64)             {}
