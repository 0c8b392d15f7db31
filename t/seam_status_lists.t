# Each policy's outcome is classified with the failure and neutral lists of
# the location that reserved it, whatever location finally produced the
# status: an intercepted 400 answered by an error_page location still counts
# as a failure where 400 is one.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy acct key=$http_x_account max_failures=3 window=30s lockout=30s;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        # 400 is this API's "wrong code"; its error page hides the upstream body
        location = /api {
            pairguard acct;
            pairguard_failure_status 400;
            proxy_intercept_errors on;
            error_page 400 /err;
            rewrite ^ /status/400 break;
            proxy_pass http://backend;
        }
        # 404 is neutral here, though the error page location's lists
        # (the defaults) would call it a failure
        location = /neutral {
            pairguard acct;
            pairguard_failure_status 400;
            pairguard_neutral_status 404;
            proxy_intercept_errors on;
            error_page 404 /err;
            rewrite ^ /status/404 break;
            proxy_pass http://backend;
        }
        location = /err { internal; default_type application/json; return 200 '{"error":"bad"}'; }
    }
}
CONF
my $port = $ng->port;

my @st = map { http($port, 'POST', '/api', headers => { 'X-Account' => 'alice' })->{status} } 1 .. 5;
is("@st", '400 400 400 429 429', 'an intercepted 400 counts as a failure of the location that reserved it');
is($up->count('/status/400'), 3, '  and only three attempts reached the upstream');

@st = map { http($port, 'POST', '/neutral', headers => { 'X-Account' => 'bob' })->{status} } 1 .. 6;
is("@st", '404 404 404 404 404 404', 'a 404 neutral where it was reserved never locks, whatever the error page location says');

done();
