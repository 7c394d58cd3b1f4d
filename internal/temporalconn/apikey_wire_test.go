package temporalconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestAPIKeyReachesTheServerAsABearerToken: a client dialled with these options sends the API
// key as "authorization: Bearer <key>" over TLS checked against TEMPORAL_TLS_CA. The listener
// is a TLS gRPC endpoint that records the first call's metadata and refuses it.
func TestAPIKeyReachesTheServerAsABearerToken(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "temporal.test"},
		DNSNames: []string{"temporal.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan metadata.MD, 1)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			md, _ := metadata.FromIncomingContext(stream.Context())
			select {
			case got <- md:
			default:
			}
			return status.Error(codes.PermissionDenied, "recorded")
		}))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	o := Options{Address: lis.Addr().String(), CAPath: caPath, ServerName: "temporal.test", APIKey: "the-key"}
	co, err := o.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if c, err := client.DialContext(ctx, co); err == nil {
		c.Close()
	}
	select {
	case md := <-got:
		if auth := md.Get("authorization"); len(auth) != 1 {
			t.Errorf("the server got authorization %q, want one value", auth)
		} else if auth[0] != "Bearer the-key" {
			t.Errorf("the server got authorization %q, want %q", auth[0], "Bearer the-key")
		}
	case <-ctx.Done():
		t.Fatal("no call reached the server")
	}
}
