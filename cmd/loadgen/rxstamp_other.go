//go:build !linux

package main

import "syscall"

func enableRxStamps(syscall.RawConn) {}
