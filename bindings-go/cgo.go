package podnet

// Every cgo flag of the package lives here; the other files only #include <podnet.h>, with
// angle brackets: a quoted include also searches the C compiler's working directory, where
// cgo's probes once found a stale podnet.h in /tmp.
//
// The library is libpodnet.a, linked statically: the binary does not need libpodnet.so at run
// time. It is found in ../target/release (the default CARGO_TARGET_DIR of `make lib` at the
// repository root); a build that keeps it elsewhere puts that directory first with
// CGO_LDFLAGS=-L<dir> (bindings-go/Makefile does, from CARGO_TARGET_DIR). "-l:libpodnet.a"
// names the archive itself, so a libpodnet.so next to it is never picked instead.
// The libraries after it are what the Rust standard library needs (`rustc --print
// native-static-libs`, the root Makefile's LIBS_PRIVATE).

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#cgo LDFLAGS: -L${SRCDIR}/../target/release -l:libpodnet.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"
