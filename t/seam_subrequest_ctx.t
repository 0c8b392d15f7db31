# Subrequests share their main request's pool, where the module's request
# context is found again after an internal redirect. A context is taken back
# only by the request it was made for:
#  - a main request that reaches a guarded location through error_page after
#    an auth_request to a pairguard endpoint must not take the subrequest's
#    context (its Redis callbacks would resume the finished subrequest, and
#    the main request would hang);
#  - a subrequest to a pairguard endpoint made after the guard decided must
#    not run on the main request's context;
#  - variables in a subrequest still read what the main request decided.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up, workers => 1);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=1s;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_pairing_policy platforms=telegram;
    pairguard_policy acct key=$http_x_account max_failures=2 window=30s lockout=30s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        # a pairguard endpoint answering a subrequest (it asks Redis)
        location = /pg-check {
            internal;
            pairguard_pairing pending;
        }

        # not guarded here: the auth_request's subrequest makes the first
        # context; a 404 from the upstream goes on to a guarded location
        location = /app {
            auth_request /pg-check;
            proxy_intercept_errors on;
            error_page 404 = @login;
            proxy_pass http://backend/status/404;
        }
        location @login {
            pairguard acct;
            pairguard_failure_status 401;
            rewrite ^ /status/401 break;
            proxy_pass http://backend;
        }

        # guarded first, then the auth_request's subrequest to the endpoint;
        # the subrequest's upstream request carries the guard's decision
        location = /guarded {
            pairguard acct;
            pairguard_failure_status 401;
            auth_request /pg-check;
            proxy_pass http://backend/status/401;
        }
        # a subrequest reads the main request's decision
        location = /decision-check {
            internal;
            if ($pairguard_decision != "allow") {
                return 403;
            }
            return 204;
        }
        location = /decided {
            pairguard acct;
            pairguard_failure_status 401;
            auth_request /decision-check;
            proxy_pass http://backend/status/200;
        }
    }
}
CONF
my $port = $ng->port;

my @st = map { http($port, 'GET', '/app', headers => { 'X-Account' => 'alice' }, timeout => 5) } 1 .. 3;
is(join(' ', map { $_->{status} // 'none' } @st), '401 401 429',
    'after an auth_request to an endpoint, error_page into a guarded location: guarded, answered, locked at two');
is(scalar(grep { $_->{timeout} } @st), 0, '  no request hangs');
is($up->count('/status/401'), 2, '  two guesses reached the login upstream');

$up->reset;
@st = map { http($port, 'GET', '/guarded', headers => { 'X-Account' => 'bob' }, timeout => 5)->{status} // 'none' } 1 .. 3;
is("@st", '401 401 429', 'guarded, then an auth_request to an endpoint: the guess counts, the account locks');
is($up->count('/status/401'), 2, '  two guesses reached the upstream');

$up->reset;
is(http($port, 'GET', '/decided', headers => { 'X-Account' => 'carol' })->{status}, 200,
    'an auth_request\'s subrequest reads the main request\'s $pairguard_decision (allow)');
is($up->count('/status/200'), 1, '  and the request reached its upstream');

unlike($ng->error_log, qr/\[alert\]|\[crit\]|signal \d+/, 'no alert, no crash');

done();
