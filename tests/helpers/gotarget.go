// gotarget: a Go program that reloads on SIGHUP, and the window in which the Go runtime lets
// SIGHUP end it.
//
// The runtime installs a handler for every signal before main runs, so /proc/PID/status shows
// SIGHUP caught from the first instruction; but until the program calls signal.Notify for it,
// that handler exits the process on SIGHUP. This program prints "ready <pid>", calls
// signal.Notify(..., SIGHUP) only after --notify-after MS (0: at once) and then prints
// "handler <pid>", and reports every SIGHUP as target.c does: "signal <pid> master SIGHUP
// <content>", content being what --config holds then ("-" when unreadable).
//
//	gotarget [--comm NAME] [--config FILE] [--notify-after MS]
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

var comm, config string
var notifyAfter time.Duration

// init runs on the main thread (the runtime locks it there for init): PR_SET_NAME here names
// /proc/PID/comm, the process's name, not that of some other thread.
func init() {
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		if i+1 >= len(args) {
			usage(args[i])
		}
		switch args[i] {
		case "--comm":
			comm = args[i+1]
		case "--config":
			config = args[i+1]
		case "--notify-after":
			ms, err := strconv.Atoi(args[i+1])
			if err != nil || ms < 0 {
				usage(args[i])
			}
			notifyAfter = time.Duration(ms) * time.Millisecond
		default:
			usage(args[i])
		}
		i++
	}
	if comm != "" {
		name := append([]byte(comm), 0)
		const prSetName = 15
		syscall.RawSyscall(syscall.SYS_PRCTL, prSetName, uintptr(unsafe.Pointer(&name[0])), 0)
	}
}

func usage(arg string) {
	fmt.Fprintf(os.Stderr, "gotarget: bad argument %s\n", arg)
	os.Exit(2)
}

// content is what tests/helpers/config.h's read_config prints for the file.
func content() string {
	b, err := os.ReadFile(config)
	if config == "" || err != nil {
		return "-"
	}
	if len(b) > 2047 {
		b = b[:2047]
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c == '\n':
			out = append(out, `\n`...)
		case c < 0x21 || c >= 0x7f || c == '\\':
			out = append(out, fmt.Sprintf(`\x%02x`, c)...)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

func main() {
	pid := os.Getpid()
	fmt.Printf("ready %d\n", pid)
	time.Sleep(notifyAfter)
	hup := make(chan os.Signal, 16)
	signal.Notify(hup, syscall.SIGHUP)
	fmt.Printf("handler %d\n", pid)
	for range hup {
		fmt.Printf("signal %d master SIGHUP %s\n", pid, content())
	}
}
