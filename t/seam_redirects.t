# Internal redirects never bypass a policy: a request that reaches a location
# through try_files, error_page, a named location, `rewrite ... last` or
# X-Accel-Redirect reserves there the policies it has not reserved yet, and
# those lock like anywhere else. Policies already reserved are not counted
# twice.
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
    pairguard_policy wide  key=$remote_addr    max_failures=1000 window=30s lockout=30s;
    pairguard_policy login key=$http_x_account max_failures=3    window=30s lockout=30s;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        root %%TESTDIR%%/nonexistent;

        location = /login {
            pairguard wide;
            pairguard login;
            proxy_pass http://backend/status/401;
        }
        location @login {
            pairguard wide;
            pairguard login;
            rewrite ^ /status/401 break;
            proxy_pass http://backend;
        }

        location /front/   { pairguard wide; try_files $uri /login; }
        location /named/   { pairguard wide; try_files $uri @login; }
        location /errpage/ { pairguard wide; error_page 404 = /login; proxy_intercept_errors on;
                             rewrite ^ /status/404 break; proxy_pass http://backend; }
        location /rewrite/ { pairguard wide; rewrite ^ /login last; }
        location /accel/   { pairguard wide; rewrite ^ /accel break; proxy_pass http://127.0.0.1:%%PORT2%%; }
    }

    server {
        listen 127.0.0.1:%%PORT2%%;
        location = /accel { add_header X-Accel-Redirect /login; return 200 ""; }
    }
}
CONF
my $port = $ng->port;

for my $seam (['/front/x', 'try_files'], ['/named/x', 'a named location'], ['/errpage/x', 'error_page'],
              ['/rewrite/x', 'rewrite ... last'], ['/accel/x', 'X-Accel-Redirect']) {
    my ($path, $what) = @$seam;
    my $account = "acct-$path";
    $up->reset;
    my @st = map { http($port, 'POST', $path, headers => { 'X-Account' => $account })->{status} } 1 .. 5;
    is("@st", '401 401 401 429 429', "through $what, the account locks after three failures");
    is($up->count('/status/401'), 3, "  and only three attempts reached the login upstream");
    is($up->count('/status/404'), $path eq '/errpage/x' ? 5 : 0,
        $path eq '/errpage/x' ? '  (the first location, which has no login policy, saw every request)' : '  and the first location never reached an upstream');
    my $r = http($port, 'POST', '/login', headers => { 'X-Account' => $account });
    is($r->{status}, 429, "  and the lock holds on the login location itself");
}

# the wide policy was reserved once per request, in the first location, not
# again after the redirect: its count is one per request
my @keys = $redis->scan_keys('pairguard:*');
ok(scalar(@keys) > 0, 'Redis holds the counters');

# a request that is let through by try_files to a location whose policies
# were all reserved already costs no second reservation
$up->reset;
is(http($port, 'GET', '/front/y', headers => { 'X-Account' => 'fresh' })->{status}, 401,
    'a fresh account through try_files reaches the upstream');
is($up->count, 1, '  exactly once');

done();
