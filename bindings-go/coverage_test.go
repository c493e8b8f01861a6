package podnet_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestEveryCFunctionWrapped: every function include/podnet.h declares is called from the
// binding (C.<name> in a non-test Go file of any of its packages) or listed in not_wrapped.txt with a reason.
func TestEveryCFunctionWrapped(t *testing.T) {
	header, err := os.ReadFile(filepath.Join("..", "include", "podnet.h"))
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	// Declarations only: comment lines (" * ...", "/**") mention functions too.
	decl := regexp.MustCompile(`\b(podnet_[a-z0-9_]+)\(`)
	for _, line := range strings.Split(string(header), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "*") || strings.HasPrefix(trimmed, "/*") ||
			strings.HasPrefix(trimmed, "//") || strings.HasPrefix(trimmed, "#") {
			continue
		}
		for _, m := range decl.FindAllStringSubmatch(line, -1) {
			declared[m[1]] = true
		}
	}
	if len(declared) < 50 {
		t.Fatalf("found only %d declarations in podnet.h: is the parser broken?", len(declared))
	}

	// Uses in Go code (C.podnet_x selectors in the syntax tree, so a mention in a comment
	// does not count).
	called := map[string]bool{}
	// Every package of the binding: this one, cluster, internal/cabi.
	var sources []string
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			sources = append(sources, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, path := range sources {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "C" && strings.HasPrefix(sel.Sel.Name, "podnet_") {
					called[sel.Sel.Name] = true
				}
			}
			return true
		})
	}

	skipped := map[string]string{}
	f, err := os.Open("not_wrapped.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, _ := strings.Cut(line, " ")
		if strings.TrimSpace(reason) == "" {
			t.Errorf("not_wrapped.txt:%d: %s has no reason", n, name)
		}
		skipped[name] = strings.TrimSpace(reason)
	}

	var missing []string
	for name := range declared {
		if !called[name] && skipped[name] == "" {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("%s is declared in podnet.h but neither called (C.%s) nor listed in not_wrapped.txt", name, name)
	}
	for name := range skipped {
		if !declared[name] {
			t.Errorf("not_wrapped.txt lists %s, which podnet.h does not declare", name)
		}
		if called[name] {
			t.Errorf("not_wrapped.txt lists %s, which the binding calls", name)
		}
	}
	t.Logf("%d C functions: %d called, %d deliberately not wrapped", len(declared), len(declared)-len(missing)-len(skipped), len(skipped))
}
