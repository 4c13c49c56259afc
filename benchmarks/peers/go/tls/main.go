// The TLS benchmark server on Go's crypto/tls: a sink, as benchmarks/README.md
// ("TLS") describes. Counts bytes until the peer's end, answers "<count>\n" and
// closes (close_notify, FIN). Run with GOMAXPROCS=1, as the plain Go peer.
//
//	tls_server --port PORT --cert FILE --key FILE
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
)

func sink(conn net.Conn) {
	defer conn.Close()
	if tcp, ok := conn.(*tls.Conn).NetConn().(*net.TCPConn); ok {
		tcp.SetNoDelay(true)
	}
	buf := make([]byte, 64*1024)
	var bytes int64
	for {
		n, err := conn.Read(buf)
		bytes += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	fmt.Fprintf(conn, "%d\n", bytes)
}

func main() {
	port := flag.Int("port", 0, "port (0: the kernel picks)")
	cert := flag.String("cert", "", "PEM certificate")
	key := flag.String("key", "", "PEM key")
	flag.Parse()
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	listener, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port),
		&tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue
		}
		go sink(conn)
	}
}
