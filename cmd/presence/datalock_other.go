//go:build !unix

package main

import "errors"

// errDataDirInUse means another presence process holds the data directory.
var errDataDirInUse = errors.New("data directory is in use")

// lockDataDir is a no-op where flock is missing: nothing then stops two
// servers from sharing one data directory.
func lockDataDir(string) (func(), error) { return func() {}, nil }
