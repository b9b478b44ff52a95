// Command host is a tiny example host site for Presence: its own origin,
// its own sign-in, and access tokens it signs with the secret it shares
// with Presence (HS256). Its home page shows the widget with one
// embed.js script tag; /frame shows it in an iframe. Nobody signs in to
// Presence.
//
//	export PRESENCE_JWT_SECRET=$(openssl rand -hex 32)
//	presence serve --addr 127.0.0.1:8080 --allowed-origins http://localhost:8090 &
//	go run ./examples/host -addr localhost:8090 -presence http://127.0.0.1:8080
//
// then open http://localhost:8090 in two browsers and sign in as ada and
// grace (password "password1").
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/presencehq/presence/examples/host/hostsite"
)

func main() {
	addr := flag.String("addr", "localhost:8090", "address to listen on")
	presence := flag.String("presence", "http://127.0.0.1:8080", "the Presence server's origin")
	users := flag.String("users", "42:ada:password1,3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b:grace:password1",
		"the site's users, comma-separated id:username:password")
	flag.Parse()
	list, err := parseUsers(*users)
	if err != nil {
		log.Fatal(err)
	}
	site, err := hostsite.New(hostsite.Config{
		PresenceURL: *presence,
		Secret:      []byte(os.Getenv("PRESENCE_JWT_SECRET")),
		Users:       list,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("example host on http://%s, using Presence at %s\n", *addr, *presence)
	log.Fatal(http.ListenAndServe(*addr, site))
}

// parseUsers reads "id:username:password,…". An id may not contain ':'.
func parseUsers(s string) ([]hostsite.User, error) {
	var out []hostsite.User
	for _, f := range strings.Split(s, ",") {
		p := strings.SplitN(f, ":", 3)
		if len(p) != 3 || p[0] == "" || p[1] == "" || p[2] == "" {
			return nil, errors.New("host: -users: want id:username:password, comma-separated")
		}
		out = append(out, hostsite.User{ID: p[0], Username: p[1], Password: p[2]})
	}
	return out, nil
}
