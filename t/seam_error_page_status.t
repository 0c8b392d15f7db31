# An error_page that changes the status (`error_page 404 =200 /sorry.html`
# with proxy_intercept_errors) must not turn the upstream's "wrong guess"
# into a success: the failure is counted from the upstream's own status, the
# key locks, and no trusted-device cookie is handed out for it. And a
# device_cookie on a key made of the client's address alone is refused by
# nginx -t (one login would mint devices for a whole network).
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=300ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy account key=$http_x_account max_failures=3 window=60s lockout=60s device_cookie=pg_dev;
    pairguard_policy code key=$http_x_code max_failures=3 window=60s lockout=60s;
    pairguard_policy wide key=$http_x_client max_failures=2 window=60s lockout=60s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%;

        location = /login {
            pairguard account;
            pairguard_failure_status 401 404;
            proxy_intercept_errors on;
            error_page 404 =200 /sorry.html;
            error_page 401 =200 /sorry.html;
            proxy_pass http://backend/status/404;
        }
        location = /login-ok {
            pairguard account;
            pairguard_failure_status 401 404;
            proxy_pass http://backend/status/200;
        }
        location = /sorry.html {
            return 200 "sorry\n";
        }

        # a guess whose error page is a location that refuses (another
        # policy, locked): the refusal must not release the guess
        location = /pair {
            pairguard code;
            pairguard_failure_status 401;
            proxy_intercept_errors on;
            error_page 401 /pair-error;
            proxy_pass http://backend/status/401;
        }
        location = /pair-error {
            pairguard wide;
            pairguard_failure_status 404;
        }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis, upstream => $up, workers => 2);
sub login ($path, $acct) { http_get($ng->port, $path, headers => { 'X-Account' => $acct }, timeout => 5) }

for my $i (1 .. 3) {
    my $r = login('/login', 'alice');
    is($r->{status}, 200, "wrong guess $i: the client sees the error page's 200");
    ok(!grep({ /pg_dev=/ } @{ $r->{headers_all}{'set-cookie'} // [] }) && ($r->{headers}{'set-cookie'} // '') !~ /pg_dev=/,
        '  and gets no trusted-device cookie for it');
}
is(login('/login', 'alice')->{status}, 429, 'the upstream\'s 404s were counted as failures: the account is locked');
is($up->count('/status/404'), 3, 'exactly three guesses reached the upstream');
my $ok = login('/login-ok', 'bob');
is($ok->{status}, 200, 'a real success');
like($ok->{headers}{'set-cookie'} // '', qr/^pg_dev=[A-Za-z0-9_-]{55};/, '  does hand out the device cookie');

# the attacker locks its own `wide` key on the error page's location (a
# missing file: 404, a failure there) ...
for (1 .. 2) { http_get($ng->port, '/pair-error', headers => { 'X-Client' => 'evil' }) }
is(http_get($ng->port, '/pair-error', headers => { 'X-Client' => 'evil' })->{status}, 429, '`wide` is locked for this client');
# ... so that every wrong code's error page is refused: the upstream's 401
# still counts on `code`, which locks after its three failures
my @st = map { http_get($ng->port, '/pair', headers => { 'X-Client' => 'evil', 'X-Code' => '1234' })->{status} } 1 .. 6;
is_deeply(\@st, [(429) x 6], 'every guess is answered by the refusal');
is($up->count('/status/401'), 3, 'but only three guesses reached the upstream: the refusal did not release them');
is(http_get($ng->port, '/pair', headers => { 'X-Client' => 'other', 'X-Code' => '1234' })->{status}, 429,
    '  the code is locked for everyone');

my $bad = $conf =~ s/key=\$http_x_account max_failures=3/key=\$pairguard_client_net max_failures=3/r;
my ($rc, $out) = nginx_t($bad, redis => $redis, upstream => $up);
isnt($rc, 0, 'nginx -t refuses device_cookie on a key of the client\'s address alone');
like($out, qr/device_cookie needs an account key/, '  saying why');
my $mixed = $conf =~ s/key=\$http_x_account max_failures=3/key=\$pairguard_client_net:\$http_x_account max_failures=3/r;
($rc, $out) = nginx_t($mixed, redis => $redis, upstream => $up);
is($rc, 0, 'a key naming the account (with the address too) is accepted') or diag $out;
done();
