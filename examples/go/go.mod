module github.com/podnet/podnet/examples/go

go 1.24

require (
	github.com/podnet/podnet/bindings-go v0.0.0
	golang.org/x/sys v0.33.0
)

// The binding in this repository, not a published version.
replace github.com/podnet/podnet/bindings-go => ../../bindings-go
