// SPDX-License-Identifier: MIT
//
// A Varlink conformance client for killswitchd, written against the reference Go
// implementation (github.com/varlink/go, Debian's golang-github-varlink-go-dev): its
// connection does the framing and its idl package parses the interface descriptions the
// service serves. Every reply and every error is checked against them: types, required
// fields, no undeclared field, enum values.
//
// Usage: conformance ADDRESS IDL-FILE < STEPS
// ADDRESS is unix:/path; IDL-FILE the io.killswitch.varlink of the source tree (the served
// description must be the same text). STEPS has one call per line, tab-separated:
//
//	EXPECT  METHOD  PARAMETERS  [FLAGS]  [FIELD=VALUE]
//
// EXPECT is "ok" or the expected error name; PARAMETERS is JSON ("null" for none, as the
// reference client sends); FLAGS is "-", "oneway", "more" or "upgrade"; FIELD=VALUE a string
// field the reply or error must carry. Lines starting with # are comments. A step prints
// "PASS: ..." or "FAIL: ..."; at the end, a check that every method of both interfaces was
// called with a valid reply, and a list of the declared errors that were seen.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/varlink/go/varlink"
	"github.com/varlink/go/varlink/idl"
)

var failed = 0

func pass(format string, a ...interface{}) { fmt.Printf("PASS: varlink: "+format+"\n", a...) }
func fail(format string, a ...interface{}) {
	failed++
	fmt.Printf("FAIL: varlink: "+format+"\n", a...)
}

type iface struct {
	idl     *idl.IDL
	aliases map[string]*idl.Type
	methods map[string]*idl.Method
	errors  map[string]*idl.Error
}

func parse(description string) (*iface, error) {
	d, err := idl.New(description)
	if err != nil {
		return nil, err
	}
	i := &iface{idl: d, aliases: map[string]*idl.Type{}, methods: map[string]*idl.Method{},
		errors: map[string]*idl.Error{}}
	for _, a := range d.Aliases {
		i.aliases[a.Name] = a.Type
	}
	for _, m := range d.Methods {
		i.methods[m.Name] = m
	}
	for _, e := range d.Errors {
		i.errors[e.Name] = e
	}
	return i, nil
}

// check returns what is wrong with v as a value of type t ("" if nothing).
func (i *iface) check(t *idl.Type, v interface{}, path string) []string {
	bad := func(what string) []string { return []string{fmt.Sprintf("%s: %s, got %s", path, what, show(v))} }
	switch t.Kind {
	case idl.TypeMaybe:
		if v == nil {
			return nil
		}
		return i.check(t.ElementType, v, path)
	case idl.TypeAlias:
		a, ok := i.aliases[t.Alias]
		if !ok {
			return []string{fmt.Sprintf("%s: type %s is not declared", path, t.Alias)}
		}
		return i.check(a, v, path)
	}
	if v == nil {
		return bad("null where the IDL has no '?'")
	}
	switch t.Kind {
	case idl.TypeBool:
		if _, ok := v.(bool); !ok {
			return bad("expected bool")
		}
	case idl.TypeInt:
		n, ok := v.(json.Number)
		if !ok {
			return bad("expected int")
		}
		if _, err := n.Int64(); err != nil {
			return bad("expected an integer")
		}
	case idl.TypeFloat:
		if _, ok := v.(json.Number); !ok {
			return bad("expected float")
		}
	case idl.TypeString:
		if _, ok := v.(string); !ok {
			return bad("expected string")
		}
	case idl.TypeObject:
		if _, ok := v.(map[string]interface{}); !ok {
			return bad("expected object")
		}
	case idl.TypeEnum:
		s, ok := v.(string)
		if !ok {
			return bad("expected an enum string")
		}
		for _, f := range t.Fields {
			if f.Name == s {
				return nil
			}
		}
		return bad("not one of the enum's values")
	case idl.TypeArray:
		a, ok := v.([]interface{})
		if !ok {
			return bad("expected array")
		}
		var errs []string
		for n, e := range a {
			errs = append(errs, i.check(t.ElementType, e, fmt.Sprintf("%s[%d]", path, n))...)
		}
		return errs
	case idl.TypeMap:
		m, ok := v.(map[string]interface{})
		if !ok {
			return bad("expected map")
		}
		var errs []string
		for k, e := range m {
			errs = append(errs, i.check(t.ElementType, e, path+"["+k+"]")...)
		}
		return errs
	case idl.TypeStruct:
		return i.checkStruct(t, v, path, nil)
	}
	return nil
}

// checkStruct: every field required unless '?', no field the IDL does not declare (but `allow`).
func (i *iface) checkStruct(t *idl.Type, v interface{}, path string, allow map[string]bool) []string {
	m, ok := v.(map[string]interface{})
	if !ok {
		return []string{fmt.Sprintf("%s: expected an object, got %s", path, show(v))}
	}
	var errs []string
	declared := map[string]bool{}
	for _, f := range t.Fields {
		declared[f.Name] = true
		e, present := m[f.Name]
		if !present {
			if f.Type.Kind != idl.TypeMaybe {
				errs = append(errs, fmt.Sprintf("%s.%s: missing (required by the IDL)", path, f.Name))
			}
			continue
		}
		errs = append(errs, i.check(f.Type, e, path+"."+f.Name)...)
	}
	for k := range m {
		if !declared[k] && !allow[k] {
			errs = append(errs, fmt.Sprintf("%s.%s: not declared in the IDL", path, k))
		}
	}
	sort.Strings(errs)
	return errs
}

func show(v interface{}) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}

func decode(raw *json.RawMessage) (interface{}, error) {
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	d := json.NewDecoder(bytes.NewReader(*raw))
	d.UseNumber()
	var v interface{}
	err := d.Decode(&v)
	return v, err
}

type checker struct {
	conn       *varlink.Connection
	ifaces     map[string]*iface // by interface name
	called     map[string]bool   // methods answered with a valid reply
	seenErrors map[string]bool
}

func split(name string) (string, string) {
	n := strings.LastIndex(name, ".")
	if n < 0 {
		return "", name
	}
	return name[:n], name[n+1:]
}

// standardField: the field an org.varlink.service error carries, as the reference client decodes it.
func standardField(err error) (string, string, bool) {
	switch e := err.(type) {
	case *varlink.InvalidParameter:
		return "org.varlink.service.InvalidParameter", "parameter=" + e.Parameter, e.Parameter != ""
	case *varlink.MethodNotFound:
		return "org.varlink.service.MethodNotFound", "method=" + e.Method, e.Method != ""
	case *varlink.InterfaceNotFound:
		return "org.varlink.service.InterfaceNotFound", "interface=" + e.Interface, e.Interface != ""
	case *varlink.MethodNotImplemented:
		return "org.varlink.service.MethodNotImplemented", "method=" + e.Method, e.Method != ""
	}
	return "", "", false
}

func hasField(v interface{}, want string) bool {
	kv := strings.SplitN(want, "=", 2)
	m, ok := v.(map[string]interface{})
	if !ok || len(kv) != 2 {
		return false
	}
	s, ok := m[kv[0]].(string)
	return ok && s == kv[1]
}

func (c *checker) step(expect, method, params, flagName, want string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	what := method + " " + params
	if flagName != "-" {
		what += " (" + flagName + ")"
	}
	var p interface{}
	if err := json.Unmarshal([]byte(params), &p); err != nil {
		fail("%s: bad step: %v", what, err)
		return
	}
	flags := map[string]uint64{"-": 0, "oneway": varlink.Oneway, "more": varlink.More, "upgrade": varlink.Upgrade}[flagName]
	// A pointer, as the reference Call() passes it: "null" goes out as "parameters": null.
	receive, err := c.conn.Send(ctx, method, &p, flags)
	if err != nil {
		fail("%s: send: %v", what, err)
		return
	}
	if flagName == "oneway" {
		pass("%s: sent, no reply expected (the next step's reply shows none came)", what)
		return
	}
	var raw json.RawMessage
	rflags, err := receive(ctx, &raw)
	if err == nil && rflags&varlink.Continues != 0 {
		fail("%s: reply says \"continues\" but no further reply follows", what)
	}
	ifName, mName := split(method)
	if err != nil {
		c.checkError(what, expect, want, err)
		return
	}
	if expect != "ok" {
		fail("%s: expected error %s, got a reply %s", what, expect, show(raw))
		return
	}
	i, ok := c.ifaces[ifName]
	var m *idl.Method
	if ok {
		m = i.methods[mName]
	}
	if m == nil {
		fail("%s: replied, but the IDL has no such method", what)
		return
	}
	v, derr := decode(&raw)
	if derr != nil {
		fail("%s: reply is not JSON: %v", what, derr)
		return
	}
	if errs := i.checkStruct(m.Out, v, mName, nil); len(errs) > 0 {
		fail("%s: reply does not match the IDL: %s", what, strings.Join(errs, "; "))
		return
	}
	if want != "" && !hasField(v, want) {
		fail("%s: reply lacks %s: %s", what, want, show(v))
		return
	}
	c.called[method] = true
	pass("%s: reply matches %s's output in the IDL", what, mName)
}

func (c *checker) checkError(what, expect, want string, err error) {
	if name, field, ok := standardField(err); name != "" {
		c.seenErrors[name] = true
		switch {
		case name != expect:
			fail("%s: expected %s, got %s (%s)", what, expect, name, field)
		case !ok:
			fail("%s: %s without its field (%s)", what, name, field)
		case want != "" && want != field:
			fail("%s: %s with %s, expected %s", what, name, field, want)
		default:
			pass("%s: %s with %s", what, name, field)
		}
		return
	}
	ve, isVarlink := err.(*varlink.Error)
	if !isVarlink {
		fail("%s: %v", what, err)
		return
	}
	c.seenErrors[ve.Name] = true
	if ve.Name != expect {
		fail("%s: expected %s, got error %s", what, expect, ve.Name)
		return
	}
	ifName, eName := split(ve.Name)
	i, ok := c.ifaces[ifName]
	var e *idl.Error
	if ok {
		e = i.errors[eName]
	}
	if e == nil {
		fail("%s: error %s is not declared in the IDL", what, ve.Name)
		return
	}
	raw, _ := ve.Parameters.(*json.RawMessage)
	v, derr := decode(raw)
	if derr != nil {
		fail("%s: error parameters are not JSON: %v", what, derr)
		return
	}
	t := e.Type
	if t == nil {
		t = &idl.Type{Kind: idl.TypeStruct}
	}
	if errs := i.checkStruct(t, v, eName, nil); len(errs) > 0 {
		fail("%s: error %s does not match the IDL: %s", what, ve.Name, strings.Join(errs, "; "))
		return
	}
	if want != "" && !hasField(v, want) {
		fail("%s: error %s lacks %s: %s", what, ve.Name, want, show(v))
		return
	}
	pass("%s: %s matches its declaration in the IDL", what, ve.Name)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: conformance unix:PATH IO.KILLSWITCH.VARLINK < STEPS")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := varlink.NewConnection(ctx, os.Args[1])
	if err != nil {
		fail("connect to %s: %v", os.Args[1], err)
		os.Exit(1)
	}
	defer conn.Close()

	// The library's own GetInfo: "parameters": null, as every reference client sends it.
	var vendor, product, version, url string
	var interfaces []string
	if err := conn.GetInfo(ctx, &vendor, &product, &version, &url, &interfaces); err != nil {
		fail("GetInfo (the reference client's, parameters null): %v", err)
		os.Exit(1)
	}
	sort.Strings(interfaces)
	if reflect.DeepEqual(interfaces, []string{"io.killswitch", "org.varlink.service"}) {
		pass("GetInfo (parameters null): %s %s %s, interfaces %v", vendor, product, version, interfaces)
	} else {
		fail("GetInfo lists %v, expected io.killswitch and org.varlink.service", interfaces)
	}

	c := &checker{conn: conn, ifaces: map[string]*iface{}, called: map[string]bool{}, seenErrors: map[string]bool{}}
	c.called["org.varlink.service.GetInfo"] = true
	for _, name := range interfaces {
		desc, err := conn.GetInterfaceDescription(ctx, name)
		if err != nil {
			fail("GetInterfaceDescription(%s): %v", name, err)
			continue
		}
		i, err := parse(desc)
		if err != nil || i.idl.Name != name {
			fail("GetInterfaceDescription(%s): the idl package cannot parse it: %v", name, err)
			continue
		}
		c.ifaces[name] = i
		c.called["org.varlink.service.GetInterfaceDescription"] = true
		pass("GetInterfaceDescription(%s): parsed by the reference idl package: %d methods, %d types, %d errors",
			name, len(i.idl.Methods), len(i.idl.Aliases), len(i.idl.Errors))
	}
	if c.ifaces["io.killswitch"] == nil || c.ifaces["org.varlink.service"] == nil {
		os.Exit(1)
	}
	file, err := os.ReadFile(os.Args[2])
	switch {
	case err != nil:
		fail("read %s: %v", os.Args[2], err)
	case string(file) != c.ifaces["io.killswitch"].idl.Description:
		fail("the served io.killswitch description differs from %s", os.Args[2])
	default:
		pass("the served io.killswitch description is %s, byte for byte", os.Args[2])
	}

	// The five methods that reply with the status object declare its fields, in its order; Isolate
	// and Cancel add what they dropped (and Isolate whether it was a repeat), after them.
	ks := c.ifaces["io.killswitch"]
	extras := map[string][]string{
		"Isolate": {"repeated", "dropped_restore_at", "dropped_request"},
		"Cancel":  {"dropped_restore_at", "dropped_request"},
	}
	status := ks.methods["Status"].Out.Fields
	for _, m := range []string{"Isolate", "Restore", "Cancel", "Confirm"} {
		out := ks.methods[m].Out.Fields
		var added []string
		same := len(out) >= len(status) && reflect.DeepEqual(out[:len(status)], status)
		for i := len(status); same && i < len(out); i++ {
			added = append(added, out[i].Name)
		}
		if !same || !reflect.DeepEqual(added, extras[m]) {
			fail("IDL: %s's output is not Status's (the status object) followed by %v: it adds %v", m, extras[m],
				added)
		} else {
			pass("IDL: %s replies with the status object, field for field as Status, then %v", m, extras[m])
		}
	}

	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		for len(f) < 5 {
			f = append(f, "")
		}
		if f[3] == "" {
			f[3] = "-"
		}
		c.step(f[0], f[1], f[2], f[3], f[4])
	}

	var missing []string
	for name, i := range c.ifaces {
		for _, m := range i.idl.Methods {
			if !c.called[name+"."+m.Name] {
				missing = append(missing, name+"."+m.Name)
			}
		}
	}
	if len(missing) > 0 {
		fail("methods never answered with a valid reply: %s", strings.Join(missing, ", "))
	} else {
		pass("every method of both interfaces answered with a reply that matches the IDL")
	}
	var seen, unseen []string
	for name, i := range c.ifaces {
		for _, e := range i.idl.Errors {
			if c.seenErrors[name+"."+e.Name] {
				seen = append(seen, e.Name)
			} else {
				unseen = append(unseen, e.Name)
			}
		}
	}
	sort.Strings(seen)
	sort.Strings(unseen)
	fmt.Printf("# errors checked against the IDL: %s\n# not provoked here: %s\n", strings.Join(seen, " "),
		strings.Join(unseen, " "))
	if failed > 0 {
		os.Exit(1)
	}
}
