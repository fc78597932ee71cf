package oauth

import (
	"strings"
	"testing"
)

// TestConfigValidate: one way to get tokens, with what it needs.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		oc   Config
		want string // "" for valid
	}{
		{Config{TokenFile: "/run/token"}, ""},
		{Config{Mechanism: "OAUTHBEARER", TokenFile: "/run/token"}, ""},
		{Config{TokenURL: "https://t", ClientID: "c", RefreshTokenFile: "/r"}, ""},
		{Config{TokenURL: "https://t", ClientID: "c", ClientSecret: "s", ClientCredentials: true}, ""},
		{Config{ServiceAccountFile: "/sa.json", Subject: "dmarc@example.com"}, ""},
		{Config{}, "no token source"},
		{Config{Mechanism: "plain", TokenFile: "/t"}, `mechanism "plain"`},
		{Config{TokenFile: "/t", RefreshToken: "r", TokenURL: "https://t", ClientID: "c"}, "token_file, refresh_token are all set"},
		{Config{RefreshToken: "r"}, "refresh_token needs token_url"},
		{Config{TokenURL: "https://t", ClientID: "c", ClientCredentials: true}, "needs client_secret"},
		{Config{ServiceAccountFile: "/sa.json"}, "needs subject"},
	} {
		err := tc.oc.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.oc, err, tc.want)
		}
	}
}
