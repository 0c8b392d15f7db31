# The guard runs after realip at every level (http, server, location): keys
# on $remote_addr see the client's address, not the proxy's, so one client
# behind a load balancer cannot lock out the others; and what later phases
# and the access log see is the client's address too.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();

my $common = <<'CONF';
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy ip key=$remote_addr max_failures=2 window=30s lockout=30s;
    log_format who '$remote_addr $status';
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
CONF

sub locations ($realip) {
    return <<"LOC";
        location = /api {
            $realip
            pairguard ip;
            pairguard_failure_status 404;
            access_log %%DIR%%/who.log who;
            rewrite ^ /status/404 break;
            proxy_pass http://backend;
        }
        location = /echo {
            $realip
            pairguard ip;
            proxy_set_header X-Client \$remote_addr;
            proxy_set_header X-FF \$proxy_add_x_forwarded_for;
            proxy_pass http://backend;
        }
LOC
}
my $realip = 'set_real_ip_from 127.0.0.0/8; real_ip_header X-Forwarded-For;';

my $at_http = start_nginx("http {\n$common\n    $realip\n    server {\n        listen 127.0.0.1:%%PORT%%;\n"
    . locations('') . "    }\n}\n", redis => $redis, upstream => $up);
my $at_server = start_nginx("http {\n$common\n    server {\n        listen 127.0.0.1:%%PORT%%;\n        $realip\n"
    . locations('') . "    }\n}\n", redis => $redis, upstream => $up);
my $at_location = start_nginx("http {\n$common\n    server {\n        listen 127.0.0.1:%%PORT%%;\n"
    . locations($realip) . "    }\n}\n", redis => $redis, upstream => $up);

my $n = 0;
for my $case ([$at_http, 'http'], [$at_server, 'server'], [$at_location, 'location']) {
    my ($ng, $level) = @$case;
    $n++;
    my ($bad, $good) = ("10.$n.0.1", "10.$n.0.2");
    my @st = map { http($ng->port, 'POST', '/api', headers => { 'X-Forwarded-For' => $bad })->{status} } 1 .. 3;
    is("@st", '404 404 429', "realip at $level level: the guessing client is locked");
    my $r = http($ng->port, 'POST', '/api', headers => { 'X-Forwarded-For' => $good });
    is($r->{status}, 404, "  another client behind the same proxy is not");
    like($ng->access_log('who.log'), qr/^\Q$bad\E 429$/m, '  the access log names the client, not the proxy');
    $r = http($ng->port, 'GET', '/echo', headers => { 'X-Forwarded-For' => "10.$n.0.3" });
    is($r->{json}{headers}{'x-client'}, "10.$n.0.3", '  the upstream is told the client address');
    is($r->{json}{headers}{'x-ff'}, "10.$n.0.3, 10.$n.0.3", '  and $proxy_add_x_forwarded_for carries it');
}

done();
