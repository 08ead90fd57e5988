// Command airollout-health runs the health consumers airollout's status is written for, on one
// object read from stdin (JSON or YAML), and prints what they make of it as JSON:
//
//	airollout-health kstatus            sigs.k8s.io/cli-utils kstatus (kubectl wait, Flux, ...)
//	airollout-health lua <health.lua>   an Argo CD resource health script in gopher-lua
//
// Both print {"status": "...", "message": "..."}. A bad input or a script error is exit code 1
// with the reason on stderr: the tests treat it as a failure, never as a status.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// maxInput bounds what is read from stdin: etcd stores objects of at most 1.5 MiB.
const maxInput = 8 << 20

// result is what both subcommands print.
type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "airollout-health: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: airollout-health kstatus | lua <health.lua>  (object on stdin)")
	}
	obj, err := readObject(stdin)
	if err != nil {
		return err
	}
	var res result
	switch {
	case args[0] == "kstatus" && len(args) == 1:
		res, err = kstatus(obj)
	case args[0] == "lua" && len(args) == 2:
		res, err = argoHealth(obj, args[1])
	default:
		return fmt.Errorf("unknown command %q: use kstatus or lua <health.lua>", args)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// readObject decodes one Kubernetes object as the API machinery does (integers as int64, which
// both kstatus and Argo CD's controller see), from JSON or YAML.
func readObject(r io.Reader) (map[string]interface{}, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("object on stdin is larger than %d bytes", maxInput)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("no object on stdin")
	}
	if trimmed[0] != '{' {
		if trimmed, err = yaml.YAMLToJSON(trimmed); err != nil {
			return nil, fmt.Errorf("stdin is neither a JSON object nor YAML: %w", err)
		}
	}
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(trimmed, &obj); err != nil {
		return nil, fmt.Errorf("decoding the object on stdin: %w", err)
	}
	if obj == nil {
		return nil, errors.New("stdin holds null, not an object")
	}
	if _, ok := obj["kind"].(string); !ok {
		return nil, errors.New("the object on stdin has no kind")
	}
	return obj, nil
}
