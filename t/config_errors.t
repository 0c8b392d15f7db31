# `nginx -t` refuses broken pairguard configurations and says what is wrong.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $dir = testdir();
my $short = write_file("$dir/short.secret", 'x' x 10, 0600);
my $missing = "$dir/no-such-dir/pairguard.secret";

# A whole http block from parts; each case replaces one part.
sub conf (%p) {
    my %d = (
        redis    => 'pairguard_redis 127.0.0.1:6399 timeout=100ms;',
        secret   => 'pairguard_secret_file %%SECRET_FILE%%;',
        http     => '',
        policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=15m lockout=15m;',
        location => 'pairguard claim; pairguard_failure_status 404; pairguard_neutral_status 410;',
        %p,
    );
    return <<"CONF";
http {
    %%HTTP_COMMON%%
    $d{redis}
    $d{secret}
    $d{http}
    $d{policies}
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            $d{location}
            proxy_pass http://127.0.0.1:9;
        }
    }
}
CONF
}

my ($rc, $out) = nginx_t(conf());
is($rc, 0, 'the reference configuration passes nginx -t') or diag $out;

# an error_page 413 in a guarded location: nginx answers a Content-Length
# past client_max_body_size before the guard runs; said, not refused
($rc, $out) = nginx_t(conf(location => 'pairguard claim; error_page 413 = @big;',
                           http => ''));
is($rc, 0, 'error_page 413 in a guarded location passes nginx -t') or diag $out;
like($out, qr/\[warn\].*"error_page 413" in guarded location "\/"/, '  with a [warn] that names the location') or diag $out;
($rc, $out) = nginx_t(conf(location => 'pairguard claim; error_page 404 502 = @other;'));
unlike($out, qr/error_page 413/, '  and no warning for other statuses') or diag $out;

my @cases = (
    [ 'an unknown policy in "pairguard NAME"',
      { location => 'pairguard nosuchpolicy;' },
      [qr/nosuchpolicy/] ],
    [ 'a bad duration (window=abc)',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=abc lockout=15m;' },
      [qr/abc/] ],
    [ 'a bad lockout duration (lockout=10parsecs)',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=1m lockout=10parsecs;' },
      [qr/10parsecs/] ],
    [ 'a missing secret file',
      { secret => "pairguard_secret_file $missing;" },
      [qr/\Q$missing\E/] ],
    [ 'a secret file of 10 bytes',
      { secret => "pairguard_secret_file $short;" },
      [qr/\Q$short\E/, qr/short|32|at least/i] ],
    [ 'pairguard without pairguard_redis',
      { redis => '' },
      [qr/pairguard_redis/] ],
    [ 'a duplicate pairguard_redis',
      { redis => 'pairguard_redis 127.0.0.1:6399; pairguard_redis 127.0.0.1:6400;' },
      [qr/pairguard_redis/, qr/duplicate/i] ],
    [ 'a duplicate policy name',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=1m lockout=1m; '
                  . 'pairguard_policy claim key=$http_x_a max_failures=5 window=1m lockout=1m;' },
      [qr/claim/, qr/duplicate|already/i] ],
    [ 'an unknown policy parameter',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=1m lockout=1m frobnicate=1;' },
      [qr/frobnicate/] ],
    [ 'a policy without key=',
      { policies => 'pairguard_policy claim max_failures=5 window=1m lockout=1m;' },
      [qr/key/] ],
    [ 'max_failures=0',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=0 window=1m lockout=1m;' },
      [qr/max_failures/] ],
    [ 'a device cookie name that is not a cookie name',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=1m lockout=1m "device_cookie=a;b";' },
      [qr/device_cookie=a;b/] ],
    [ 'device_ttl without device_cookie',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=1m lockout=1m device_ttl=1d;' },
      [qr/device_ttl/, qr/device_cookie/] ],
    [ 'a device_ttl beyond what browsers keep',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=1m lockout=1m device_cookie=d device_ttl=500d;' },
      [qr/device_ttl=500d/, qr/400d/] ],
    [ 'device_max_failures=0',
      { policies => 'pairguard_policy claim key=$remote_addr max_failures=5 window=1m lockout=1m device_cookie=d device_max_failures=0;' },
      [qr/device_max_failures=0/] ],
    [ 'two policies with one device cookie name',
      { policies => 'pairguard_policy claim key=$http_x_b max_failures=5 window=1m lockout=1m device_cookie=d; '
                  . 'pairguard_policy other key=$http_x_a max_failures=5 window=1m lockout=1m device_cookie=d;' },
      [qr/device_cookie "d"/, qr/other/, qr/claim/] ],
    [ 'an unknown pairguard_auth method',
      { location => 'pairguard_auth kerberos;' },
      [qr/kerberos/] ],
    [ 'a bad pairguard_auth_policy parameter',
      { http => 'pairguard_auth_policy session_ttl=forever;' },
      [qr/session_ttl=forever/] ],
    [ 'a bad plaintext= mode',
      { http => 'pairguard_auth_policy plaintext=sometimes;' },
      [qr/plaintext=sometimes/] ],
    [ 'a pairguard_thread_pool nginx does not define',
      { http => 'pairguard_thread_pool nosuchpool;', location => 'pairguard_auth password;' },
      [qr/nosuchpool/] ],
    [ 'an unknown pairguard_store_down mode',
      { http => 'pairguard_store_down sometimes;' },
      [qr/sometimes/] ],
);

for my $case (@cases) {
    my ($what, $parts, $res) = @$case;
    my ($rc, $out) = nginx_t(conf(%$parts));
    isnt($rc, 0, "nginx -t fails on $what");
    my $all = 1;
    $all &&= $out =~ $_ for @$res;
    ok($all && $out =~ /\[emerg\]/, "and the [emerg] message names the offending thing ($what)")
        or diag $out;
}

done();
