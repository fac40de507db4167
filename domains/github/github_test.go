package github_test

import (
	"testing"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/github"
)

func TestPRCreated_cacheTypeDefaultsToRedis(t *testing.T) {
	for _, payload := range []string{`{"cache_key": "trinote|423"}`, `{"cache_key": "trinote|423", "cache_type": null}`} {
		got, err := domains.Decode[github.PRCreated]([]byte(payload))
		if err != nil || got.CacheType != github.CacheRedis {
			t.Errorf("Decode(%s) = %+v, %v; want cache_type redis", payload, got, err)
		}
	}
	b, _ := envelope.MarshalPayload(github.PRCreated{CacheKey: "trinote|423"})
	if want := `{"cache_key":"trinote|423","cache_type":"redis"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
}
