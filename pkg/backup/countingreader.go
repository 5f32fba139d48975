package backup

import "io"

// countingReader counts the bytes read through it: the size of a file that
// is hashed and checked in one pass.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
