package handlers

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// proxyTrust decides whose forwarding headers are believed. Only a request
// whose peer address is in one of the trusted prefixes (--trusted-proxies)
// may say, through X-Forwarded-For / X-Real-IP, X-Forwarded-Proto and
// X-Forwarded-Host, who the client is, whether it used https and which host
// it asked for. Anyone else's headers are ignored: they are free text a
// client can set to pick another's rate limit or pass an Origin check.
type proxyTrust struct {
	prefixes []netip.Prefix
}

// newProxyTrust parses CIDRs (10.0.0.0/8) and bare addresses (192.0.2.7).
func newProxyTrust(list []string) (*proxyTrust, error) {
	p := &proxyTrust{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("handlers: trusted proxy %q: want a CIDR (10.0.0.0/8) or an address", s)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		p.prefixes = append(p.prefixes, pfx.Masked())
	}
	return p, nil
}

// any reports whether any proxy is trusted.
func (p *proxyTrust) any() bool { return len(p.prefixes) > 0 }

// trusts reports whether ip is a trusted proxy's address.
func (p *proxyTrust) trusts(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, pfx := range p.prefixes {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// peerTrusted reports whether the request's peer is a trusted proxy.
func (p *proxyTrust) peerTrusted(r *http.Request) bool {
	if !p.any() {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return p.trusts(host)
}

// ipExtractor is echo's IPExtractor, behind c.RealIP() (rate limits,
// logs). Without trusted proxies: the peer address only. With them: the
// nearest address in X-Forwarded-For (or X-Real-IP) that is not a trusted
// proxy, walking back from the peer; echo's own defaults, which trust
// every loopback, link-local and private address, are turned off.
func (p *proxyTrust) ipExtractor() echo.IPExtractor {
	if !p.any() {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, pfx := range p.prefixes {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}))
	}
	xff, realIP := echo.ExtractIPFromXFFHeader(opts...), echo.ExtractIPFromRealIPHeader(opts...)
	return func(r *http.Request) string {
		if len(r.Header[echo.HeaderXForwardedFor]) > 0 {
			return xff(r)
		}
		return realIP(r)
	}
}

// headers is pre-routing middleware: for a request from a trusted proxy,
// X-Forwarded-Host becomes r.Host and X-Forwarded-Proto becomes
// r.URL.Scheme, so the Origin and CSRF checks compare against the host the
// browser asked for, and the session cookie and the widget's links know the
// browser used https. Other requests keep their own Host, and their
// forwarding headers are ignored.
func (p *proxyTrust) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		// A request line in absolute form (GET https://host/path) fills
		// r.URL.Scheme from the client: only a trusted proxy may say https.
		r.URL.Scheme = ""
		if p.peerTrusted(r) {
			if h := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(h) {
				r.Host = h
			}
			switch proto := strings.ToLower(firstValue(r.Header.Get(echo.HeaderXForwardedProto))); proto {
			case "http", "https":
				r.URL.Scheme = proto
			}
		}
		return next(c)
	}
}

// firstValue is the first of a comma-separated header's values: the one the
// proxy nearest the client set.
func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// validHost reports whether h looks like host[:port] and nothing else.
func validHost(h string) bool {
	return h != "" && len(h) <= 255 && !strings.ContainsAny(h, "/\\?#@ \t\r\n")
}

// isHTTPS reports whether the browser reached the server over https: a TLS
// connection, or a trusted proxy's X-Forwarded-Proto (see headers).
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || r.URL.Scheme == "https"
}
