# An operator's whole configuration under a burst of wrong guesses: pairguard
# at server level, the stock error_page, try_files, a named location and
# X-Accel-Redirect together. However the 200 guesses for one code arrive,
# never more than max_failures of them reach the upstream, every request is
# answered, and no [alert] is logged.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
write_file(testdir() . '/50x.html', "<html>oops</html>\n");
my $ng = start_nginx(<<'CONF', redis => $redis, upstream => $up, workers => 2);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy wide key=$remote_addr max_failures=1000 window=30s lockout=30s;
    pairguard_policy code key=$http_x_code  max_failures=5      window=30s lockout=30s;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        root %%TESTDIR%%/nonexistent;
        pairguard wide;
        error_page 500 502 503 504 /50x.html;
        location = /50x.html { root %%TESTDIR%%; }

        location = /guess { pairguard wide; pairguard code; rewrite ^ /status/404 break; proxy_pass http://backend; }
        location @guess   { pairguard wide; pairguard code; rewrite ^ /status/404 break; proxy_pass http://backend; }
        location /front/  { try_files $uri /guess; }
        location /named/  { try_files $uri @guess; }
        location /accel/  { rewrite ^ /accel break; proxy_pass http://127.0.0.1:%%PORT2%%; }
        location /errpage/ { error_page 404 = /guess; proxy_intercept_errors on;
                             rewrite ^ /status/404 break; proxy_pass http://backend; }
    }

    server {
        listen 127.0.0.1:%%PORT2%%;
        location = /accel { add_header X-Accel-Redirect /guess; return 200 ""; }
    }
}
CONF

my @paths = ('/guess', '/front/a', '/named/b', '/accel/c', '/errpage/d');
my @res = http_burst_responses([$ng->port], 200, sub ($i) {
    { method => 'POST', path => $paths[$i % @paths], headers => { 'X-Code' => '424242' }, from => '127.0.0.' . (10 + $i % 50) }
});
is(scalar(grep { $_->{timeout} || !$_->{status} } @res), 0, 'every one of 200 guesses through five seams is answered');
my $n404 = grep { $_->{status} == 404 } @res;
my $n429 = grep { $_->{status} == 429 } @res;
is($n404 + $n429, 200, 'each is a wrong answer or a refusal');
my $stats = $up->stats;
my $reached = $stats->{by_path}{'/status/404'} // 0;
# /errpage/ sends each of its own requests to the upstream first (it has no
# code policy); only the guesses that reach /guess are counted there
my $errpage = grep { $paths[$_ % @paths] eq '/errpage/d' } 0 .. 199;
cmp_ok($reached - $errpage, '<=', 5, 'no more than max_failures guesses reached the guarded upstream');
is($reached - $errpage, 5, '  exactly max_failures did');

my $r = http($ng->port, 'POST', '/front/z', headers => { 'X-Code' => '424242' });
is($r->{status}, 429, 'the code stays locked, whichever seam asks');
done();
