// Executes an Ollama TEMPLATE with Go's text/template the way Ollama's server does for a chat request:
// system messages are collected into .System (joined by a blank line), consecutive messages of one role
// are merged, and the template sees {System, Messages, Tools, Response}; missing keys render as zero values.
//
// stdin:  {"template": "...", "conversations": [[{"role": "...", "content": "..."}, ...], ...]}
// stdout: ["rendered conversation 1", ...]
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role      string `json:"role"`
	Content   string `json:"content"`
	Thinking  string
	Images    []string
	ToolCalls []any
}

type request struct {
	Template      string      `json:"template"`
	Conversations [][]Message `json:"conversations"`
}

func collate(msgs []Message) (string, []*Message) {
	var system []string
	var out []*Message
	for i := range msgs {
		m := msgs[i]
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if n := len(out); n > 0 && out[n-1].Role == m.Role {
			out[n-1].Content += "\n\n" + m.Content
		} else {
			out = append(out, &m)
		}
	}
	return strings.Join(system, "\n\n"), out
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "bad request:", err)
		os.Exit(2)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(req.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template does not parse:", err)
		os.Exit(1)
	}
	results := []string{}
	for _, conv := range req.Conversations {
		system, messages := collate(conv)
		var b bytes.Buffer
		data := map[string]any{"System": system, "Messages": messages, "Tools": nil, "Response": ""}
		if err := tmpl.Execute(&b, data); err != nil {
			fmt.Fprintln(os.Stderr, "template does not execute:", err)
			os.Exit(1)
		}
		results = append(results, b.String())
	}
	out, _ := json.Marshal(results)
	os.Stdout.Write(out)
}
