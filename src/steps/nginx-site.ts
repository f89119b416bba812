/**
 * Lines both nginx server blocks carry (the plain HTTP site of the nginx step and the TLS site of the
 * certbot step): the /health endpoint and the ACME HTTP-01 challenge directory.
 */
export function sharedLocations(webroot: string): string[] {
  return [
    '    location = /health {',
    '        access_log off;',
    '        default_type text/plain;',
    '        return 200 "ok\\n";',
    '    }',
    '',
    '    location ^~ /.well-known/acme-challenge/ {',
    `        root ${webroot};`,
    '        default_type text/plain;',
    '        try_files $uri =404;',
    '    }',
  ];
}
