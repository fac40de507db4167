package amqp

import (
	"net/url"
	"slices"
	"strings"
)

// SplitURLs splits a RABBIT_URL that lists several brokers, separated by
// commas, into one URL per broker, trimmed of spaces. A comma starts a new
// URL only where an amqp:// or amqps:// follows it, so a password holding a
// raw comma stays in one piece.
func SplitURLs(list string) []string {
	var urls []string
	for _, part := range strings.Split(list, ",") {
		trimmed := strings.TrimSpace(part)
		if trimmed == "" {
			continue
		}
		if len(urls) > 0 && !hasAMQPScheme(trimmed) {
			urls[len(urls)-1] += "," + part
			continue
		}
		urls = append(urls, trimmed)
	}
	out := urls[:0]
	for _, u := range urls {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func hasAMQPScheme(s string) bool {
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "amqp://") || strings.HasPrefix(s, "amqps://")
}

// RedactURL returns u, one URL or a comma list of them, with every password
// replaced, for logs and errors. A URL net/url cannot parse keeps its scheme
// and what follows its credentials; the credentials themselves, user
// included, are replaced.
func RedactURL(u string) string {
	urls := SplitURLs(u)
	if len(urls) == 0 {
		return ""
	}
	out := make([]string, len(urls))
	for i, one := range urls {
		out[i] = redactOne(one)
	}
	return strings.Join(out, ",")
}

func redactOne(u string) string {
	if parsed, err := url.Parse(u); err == nil {
		return parsed.Redacted()
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		if strings.ContainsAny(u, "@:") {
			return "(unparsable URL)"
		}
		return u
	}
	// The last @ ends the credentials: a raw @ in a password comes before it.
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return scheme + "://" + rest
}

// secrets returns what must never appear in a log line or an error about
// the URLs of list: each URL as written, and each password both as written
// and decoded, longest first so that no shorter secret leaves a longer one
// half replaced.
func secrets(list string) []string {
	var s []string
	for _, u := range SplitURLs(list) {
		s = append(s, u)
		_, rest, ok := strings.Cut(u, "://")
		if !ok {
			continue
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			continue
		}
		userinfo := rest[:at]
		if _, pw, ok := strings.Cut(userinfo, ":"); ok && pw != "" {
			s = append(s, pw)
			if dec, err := url.PathUnescape(pw); err == nil && dec != pw && dec != "" {
				s = append(s, dec)
			}
		}
	}
	slices.SortStableFunc(s, func(a, b string) int { return len(b) - len(a) })
	return s
}

// redact removes the URLs of list and their passwords from a message, in
// case a library quoted either.
func redact(msg, list string) string {
	for _, sec := range secrets(list) {
		repl := "xxxxx"
		if hasAMQPScheme(sec) {
			repl = redactOne(sec)
		}
		msg = strings.ReplaceAll(msg, sec, repl)
	}
	return msg
}
