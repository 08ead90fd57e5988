package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

const (
	// maxScript bounds the health script read from disk.
	maxScript = 1 << 20
	// maxDepth bounds the recursion that converts the object into Lua tables. Kubernetes
	// objects are a few levels deep; anything deeper is refused rather than followed.
	maxDepth = 100
	// scriptTimeout matches the time Argo CD gives a health script before cancelling it.
	scriptTimeout = time.Second
)

// healthStatuses are the statuses Argo CD accepts from a health script; any other value makes
// Argo CD show Unknown.
var healthStatuses = map[string]bool{"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true}

// argoHealth runs a resource health script the way Argo CD runs a
// resource.customizations.health.<group_Kind> entry of argocd-cm: a gopher-lua state with only
// the package, base and table libraries (no string, math, io or os globals: a script that
// needs them fails here as it would there), a reduced `os` reachable through require, the object
// as the global `obj`, a one-second deadline, and the returned table's status and message.
func argoHealth(obj map[string]interface{}, scriptPath string) (result, error) {
	script, err := readScript(scriptPath)
	if err != nil {
		return result{}, err
	}
	L, err := restrictedState()
	if err != nil {
		return result{}, err
	}
	defer L.Close()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	L.SetContext(ctx)

	value, err := toLua(L, obj, 0, "obj")
	if err != nil {
		return result{}, err
	}
	L.SetGlobal("obj", value)
	// As Argo CD's DoString, with the file's name in error messages instead of "<string>".
	chunk, err := L.Load(strings.NewReader(script), scriptPath)
	if err != nil {
		return result{}, err
	}
	L.Push(chunk)
	if err := L.PCall(0, lua.MultRet, nil); err != nil {
		return result{}, err
	}
	return healthFromReturn(L.Get(-1))
}

func readScript(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("health script: %w", err)
	}
	if info.Size() > maxScript {
		return "", fmt.Errorf("health script %s is larger than %d bytes", path, maxScript)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("health script: %w", err)
	}
	return string(data), nil
}

// restrictedState opens the libraries Argo CD gives a user-supplied health script (when
// useOpenLibs is off, the default) and nothing else.
func restrictedState() (*lua.LState, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	libs := []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	}
	for _, lib := range libs {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			L.Close()
			return nil, fmt.Errorf("opening Lua library %q: %w", lib.name, err)
		}
	}
	// Argo CD offers a time-only os module; nothing that touches files, the environment or
	// the process.
	L.PreloadModule(lua.OsLibName, func(L *lua.LState) int {
		mod := L.NewTable()
		L.SetField(mod, "time", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LNumber(time.Now().Unix()))
			return 1
		}))
		L.Push(mod)
		return 1
	})
	return L, nil
}

// toLua converts a decoded JSON value into Lua values: objects and arrays become tables
// (arrays indexed from 1), numbers LNumber, null nil. `where` names the path for errors.
func toLua(L *lua.LState, v interface{}, depth int, where string) (lua.LValue, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%s is nested deeper than %d levels", where, maxDepth)
	}
	switch x := v.(type) {
	case nil:
		return lua.LNil, nil
	case bool:
		return lua.LBool(x), nil
	case string:
		return lua.LString(x), nil
	case int64:
		return lua.LNumber(x), nil
	case float64:
		return lua.LNumber(x), nil
	case []interface{}:
		t := L.CreateTable(len(x), 0)
		for i, item := range x {
			lv, err := toLua(L, item, depth+1, fmt.Sprintf("%s[%d]", where, i))
			if err != nil {
				return nil, err
			}
			t.Append(lv)
		}
		return t, nil
	case map[string]interface{}:
		t := L.CreateTable(0, len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // a deterministic table for a deterministic script
		for _, k := range keys {
			lv, err := toLua(L, x[k], depth+1, where+"."+k)
			if err != nil {
				return nil, err
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	default:
		return nil, fmt.Errorf("%s has a value of type %T that JSON does not produce", where, v)
	}
}

// healthFromReturn reads the script's returned table as Argo CD does: status and message must
// be strings (message may be absent); a status Argo CD does not know reads as Unknown.
func healthFromReturn(ret lua.LValue) (result, error) {
	t, ok := ret.(*lua.LTable)
	if !ok {
		return result{}, fmt.Errorf("the health script returned %s, not a table", ret.Type())
	}
	st, ok := t.RawGetString("status").(lua.LString)
	if !ok {
		return result{}, errors.New("the health script's table has no string status")
	}
	var msg string
	switch m := t.RawGetString("message").(type) {
	case lua.LString:
		msg = string(m)
	case *lua.LNilType:
	default:
		return result{}, fmt.Errorf("the health script's message is a %s, not a string", m.Type())
	}
	if !healthStatuses[string(st)] {
		return result{Status: "Unknown", Message: fmt.Sprintf("the health script returned the invalid status %q", string(st))}, nil
	}
	return result{Status: string(st), Message: msg}, nil
}
