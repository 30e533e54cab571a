// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// A throwaway CA and a server certificate for the address 127.0.0.1 only
// (no DNS name: "localhost" does not match it), made with the openssl
// command line, for nginx's `listen ... ssl` (startNginx's ssl option).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const OPENSSL_CNF = `
[req]
distinguished_name = dn
prompt = no

[dn]
CN = ignored

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
`;


// files in dir; returns their paths: { ca, certificate, key }
export function makeCertificates(dir) {
    const file = (name) => path.join(dir, name);
    const cnf = file('openssl.cnf');
    fs.writeFileSync(cnf, OPENSSL_CNF);
    const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
    const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

    openssl('req', '-x509', '-new', ...key, '-keyout', file('ca.key'), '-out', file('ca.pem'),
        '-days', '2', '-config', cnf, '-extensions', 'ca', '-subj', '/CN=tidal test CA');
    openssl('req', '-new', ...key, '-keyout', file('server.key'), '-out', file('server.csr'),
        '-config', cnf, '-subj', '/CN=127.0.0.1');
    openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
        '-CAcreateserial', '-out', file('server.pem'), '-days', '2',
        '-extfile', cnf, '-extensions', 'server');
    return { ca: file('ca.pem'), certificate: file('server.pem'), key: file('server.key') };
}
