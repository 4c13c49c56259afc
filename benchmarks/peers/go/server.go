// Benchmark server on Go's net package: the same protocol as peers/c/server.c.
//
//	server --mode echo|sink|mixed --port PORT | --unix PATH
//
// --unix listens on a Unix-domain socket file instead of 127.0.0.1; the file
// must not exist and is removed when the server stops.
//
// echo: every byte read is written back; after the peer's FIN the server
// flushes what it owes, then closes.
// sink: counts bytes until FIN, then answers "<count>\n" and closes.
// mixed: a connection whose first byte is 'F' is a sink, any other an echo.
//
// Written the way a Go user would: a goroutine per connection with blocking
// reads and writes. The runner sets GOMAXPROCS=1, so the netpoller and all
// goroutines share one thread, as the other single-threaded servers do.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const usage = "usage: server --mode echo|sink|mixed --port PORT | --unix PATH\n"

const bufSize = 64 * 1024

func usageError() {
	fmt.Fprint(os.Stderr, usage)
	os.Exit(2)
}

func parseArgs(args []string) (mode string, port int, path string) {
	port = -1
	for i := 0; i < len(args); i++ {
		if args[i] == "--help" {
			fmt.Print(usage)
			os.Exit(0)
		}
		if i+1 >= len(args) {
			usageError()
		}
		arg, value := args[i], args[i+1]
		i++
		switch {
		case arg == "--mode" && (value == "echo" || value == "sink" || value == "mixed"):
			mode = value
		case arg == "--port":
			p, err := strconv.Atoi(value)
			if err != nil || p < 0 || p > 65535 {
				usageError()
			}
			port = p
		case arg == "--unix" && value != "":
			path = value
		default:
			usageError()
		}
	}
	// Exactly one of --port and --unix.
	if mode == "" || (port < 0) == (path == "") {
		usageError()
	}
	return mode, port, path
}

// echo writes back every chunk before reading the next; the blocking Write is
// the backpressure. Any read result other than data (EOF or an error) ends the
// connection once everything read has been written.
func echo(conn net.Conn) {
	echoWith(conn, make([]byte, bufSize))
}

func echoWith(conn net.Conn, buf []byte) {
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sink counts until FIN and answers with the count; an error means the peer
// is gone and gets no answer.
func sink(conn net.Conn) {
	sinkFrom(conn, make([]byte, bufSize), 0)
}

// sinkFrom is sink once `received` bytes were read by the caller.
func sinkFrom(conn net.Conn, buf []byte, received int64) {
	for {
		n, err := conn.Read(buf)
		received += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				conn.Write([]byte(strconv.FormatInt(received, 10) + "\n"))
			}
			return
		}
	}
}

// mixed serves the fairness row: the flood starts with 'F' and is
// discarded, the ping-pong beside it is echoed.
func mixed(conn net.Conn) {
	buf := make([]byte, bufSize)
	n, err := conn.Read(buf)
	if n > 0 && buf[0] == 'F' {
		if err == nil {
			sinkFrom(conn, buf, int64(n))
		}
		return
	}
	if n > 0 {
		if _, werr := conn.Write(buf[:n]); werr != nil {
			return
		}
	}
	if err == nil {
		echoWith(conn, buf)
	}
}

func serve(listener net.Listener, handler func(net.Conn)) {
	for {
		conn, err := listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return // shutting down
		}
		if err != nil {
			// Failures such as EMFILE must not stop the server; the pause
			// keeps a persistent one from spinning the only CPU we have.
			fmt.Fprintln(os.Stderr, "accept:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			tcp.SetNoDelay(true) // Go's default already, stated for clarity
		}
		go func() {
			defer conn.Close()
			handler(conn)
		}()
	}
}

func main() {
	mode, port, path := parseArgs(os.Args[1:])
	handler := map[string]func(net.Conn){"echo": echo, "sink": sink, "mixed": mixed}[mode]

	// Go sets SO_REUSEADDR on listeners and takes the backlog from
	// /proc/sys/net/core/somaxconn (4096 on current kernels).
	listener, where, err := listen(port, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	// os.Stdout is unbuffered, so the line is out as soon as Printf returns.
	fmt.Printf("listening on %s\n", where)

	// Go already turns SIGPIPE on sockets into EPIPE errors; these two end the run.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go serve(listener, handler)
	<-signals
	listener.Close() // a Unix listener removes its file here; os.Exit would not
	os.Exit(0)
}

// listen opens 127.0.0.1:port, or the Unix-domain socket at path when one is
// given, and says where for the listening line.
func listen(port int, path string) (net.Listener, string, error) {
	if path != "" {
		listener, err := net.Listen("unix", path)
		return listener, "unix:" + path, err
	}
	listener, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return nil, "", err
	}
	return listener, fmt.Sprintf("127.0.0.1:%d", listener.Addr().(*net.TCPAddr).Port), nil
}
