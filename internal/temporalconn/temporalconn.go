// Package temporalconn is how every cutover process reaches Temporal: the frontend address and
// namespace, TLS (server CA, client certificate for mTLS, server name) and an API key (Temporal
// Cloud). The worker and the CLI read the same environment variables and flags, named as the
// temporal CLI names them, so one set of variables configures cutover and `temporal` alike.
package temporalconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.temporal.io/sdk/client"
)

// Defaults of a local stack.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// Options say where Temporal is and how to authenticate. The zero value is a plaintext
// connection to DefaultAddress, namespace DefaultNamespace.
type Options struct {
	Address   string `json:"address,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// TLS: "" = on when any other TLS option or an API key is set; "true" or "false" forces it.
	TLS string `json:"tls,omitempty"`
	// CertPath and KeyPath are the client certificate and key (mutual TLS).
	CertPath string `json:"tls_cert_path,omitempty"`
	KeyPath  string `json:"tls_key_path,omitempty"`
	// CAPath is the CA that signed the server's certificate ("" = the system's roots).
	CAPath string `json:"tls_ca_path,omitempty"`
	// ServerName overrides the name the server's certificate is checked against.
	ServerName string `json:"tls_server_name,omitempty"`
	// APIKey is sent as a bearer token on every call (Temporal Cloud). Never logged.
	APIKey string `json:"-"`
}

// Each option's environment variables, first found wins: the temporal CLI's current name, then
// its older one (both are still read by the temporal CLI).
var envNames = struct{ address, namespace, tls, cert, key, ca, serverName, apiKey []string }{
	address:    []string{"TEMPORAL_ADDRESS"},
	namespace:  []string{"TEMPORAL_NAMESPACE"},
	tls:        []string{"TEMPORAL_TLS"},
	cert:       []string{"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_CLIENT_CERT_PATH"},
	key:        []string{"TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CLIENT_KEY_PATH"},
	ca:         []string{"TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
	serverName: []string{"TEMPORAL_TLS_SERVER_NAME"},
	apiKey:     []string{"TEMPORAL_API_KEY"},
}

// FromEnv reads the options from the environment (getenv nil = os.Getenv); unset ones take
// the local defaults.
func FromEnv(getenv func(string) string) Options {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(names []string) string {
		for _, n := range names {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				return v
			}
		}
		return ""
	}
	return Options{
		Address:    orDefault(get(envNames.address), DefaultAddress),
		Namespace:  orDefault(get(envNames.namespace), DefaultNamespace),
		TLS:        get(envNames.tls),
		CertPath:   get(envNames.cert),
		KeyPath:    get(envNames.key),
		CAPath:     get(envNames.ca),
		ServerName: get(envNames.serverName),
		APIKey:     get(envNames.apiKey),
	}
}

// Bind adds the temporal CLI's connection flags to fs, defaulting to o (FromEnv's values):
// --address, --namespace, --tls, --tls-cert-path, --tls-key-path, --tls-ca-path,
// --tls-server-name and --api-key.
func (o *Options) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.Address, "address", o.Address, "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "Temporal namespace (TEMPORAL_NAMESPACE)")
	fs.Var((*tlsFlag)(&o.TLS), "tls", "connect with TLS; on by itself when a TLS option or an API key is set, --tls=false turns it off (TEMPORAL_TLS)")
	fs.StringVar(&o.CertPath, "tls-cert-path", o.CertPath, "client certificate for mutual TLS, PEM (TEMPORAL_TLS_CERT)")
	fs.StringVar(&o.KeyPath, "tls-key-path", o.KeyPath, "client certificate's private key, PEM (TEMPORAL_TLS_KEY)")
	fs.StringVar(&o.CAPath, "tls-ca-path", o.CAPath, "CA of the server's certificate, PEM; default the system's (TEMPORAL_TLS_CA)")
	fs.StringVar(&o.ServerName, "tls-server-name", o.ServerName, "name the server's certificate is checked against (TEMPORAL_TLS_SERVER_NAME)")
	fs.StringVar(&o.APIKey, "api-key", o.APIKey, "API key, e.g. Temporal Cloud's; prefer the variable, a flag shows in ps (TEMPORAL_API_KEY)")
}

// tlsFlag is --tls: a boolean that also remembers whether it was given.
type tlsFlag string

func (f *tlsFlag) String() string   { return string(*f) }
func (f *tlsFlag) IsBoolFlag() bool { return true }
func (f *tlsFlag) Set(v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*f = tlsFlag(strconv.FormatBool(b))
	return nil
}

// Secure reports whether the connection uses TLS.
func (o Options) Secure() bool {
	if b, err := strconv.ParseBool(o.TLS); err == nil {
		return b
	}
	return o.CertPath != "" || o.KeyPath != "" || o.CAPath != "" || o.ServerName != "" || o.APIKey != ""
}

// Describe names the connection for logs and messages, without secrets:
// "127.0.0.1:7233 namespace default (mTLS, API key)".
func (o Options) Describe() string {
	var how []string
	switch {
	case o.Secure() && o.CertPath != "":
		how = append(how, "mTLS")
	case o.Secure():
		how = append(how, "TLS")
	default:
		how = append(how, "plaintext")
	}
	if o.APIKey != "" {
		how = append(how, "API key")
	}
	return fmt.Sprintf("%s namespace %s (%s)", orDefault(o.Address, DefaultAddress), orDefault(o.Namespace, DefaultNamespace),
		strings.Join(how, ", "))
}

// Validate checks the options without connecting: a certificate needs its key, and the
// files named must be readable PEM.
func (o Options) Validate() error {
	_, err := o.tlsConfig()
	return err
}

// ClientOptions are the SDK options for these settings: HostPort, Namespace, TLS and
// credentials. The caller adds its logger, metrics and data converter.
func (o Options) ClientOptions() (client.Options, error) {
	co := client.Options{HostPort: orDefault(o.Address, DefaultAddress), Namespace: orDefault(o.Namespace, DefaultNamespace)}
	tc, err := o.tlsConfig()
	if err != nil {
		return co, err
	}
	co.ConnectionOptions.TLS = tc
	if o.APIKey != "" {
		co.Credentials = client.NewAPIKeyStaticCredentials(o.APIKey)
	}
	return co, nil
}

func (o Options) tlsConfig() (*tls.Config, error) {
	if (o.CertPath == "") != (o.KeyPath == "") {
		return nil, errors.New("TLS client certificate and key go together: set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (--tls-cert-path, --tls-key-path) or neither")
	}
	if _, err := strconv.ParseBool(o.TLS); o.TLS != "" && err != nil {
		return nil, fmt.Errorf("TEMPORAL_TLS=%q: want true or false", o.TLS)
	}
	if !o.Secure() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CertPath != "" {
		cert, err := tls.LoadX509KeyPair(o.CertPath, o.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate %s with key %s: %w", o.CertPath, o.KeyPath, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if o.CAPath != "" {
		pem, err := os.ReadFile(o.CAPath)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", o.CAPath)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Env is the environment that gives another process (a worker, the temporal CLI) these
// options, as "NAME=value" lines; the API key is included, so it is for exec, never for logs.
func (o Options) Env() []string {
	var out []string
	add := func(name, v string) {
		if v != "" {
			out = append(out, name+"="+v)
		}
	}
	add("TEMPORAL_ADDRESS", o.Address)
	add("TEMPORAL_NAMESPACE", o.Namespace)
	add("TEMPORAL_TLS", o.TLS)
	add("TEMPORAL_TLS_CERT", o.CertPath)
	add("TEMPORAL_TLS_KEY", o.KeyPath)
	add("TEMPORAL_TLS_CA", o.CAPath)
	add("TEMPORAL_TLS_SERVER_NAME", o.ServerName)
	add("TEMPORAL_API_KEY", o.APIKey)
	return out
}

// CLIFlags are the temporal CLI's flags for these options but the namespace, for messages an
// operator copies (the API key is left to TEMPORAL_API_KEY).
func (o Options) CLIFlags() string {
	var out []string
	add := func(flag, v string) {
		if v != "" {
			out = append(out, flag+" "+v)
		}
	}
	if o.Address != "" && o.Address != DefaultAddress {
		add("--address", o.Address)
	}
	if o.Secure() && o.CertPath == "" && o.CAPath == "" && o.ServerName == "" {
		out = append(out, "--tls")
	}
	add("--tls-cert-path", o.CertPath)
	add("--tls-key-path", o.KeyPath)
	add("--tls-ca-path", o.CAPath)
	add("--tls-server-name", o.ServerName)
	return strings.Join(out, " ")
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
