module github.com/podnet/podnet/bindings-go

go 1.24

require golang.org/x/sys v0.33.0
