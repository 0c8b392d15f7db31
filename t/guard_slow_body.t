# A guarded request's body is read before its attempt is reserved, whatever
# its keys: a reservation holds its attempt 60 s, and a client that trickled
# its body (client_body_timeout bounds only the gap between two reads)
# would otherwise reach the upstream after its reservation had expired and
# stopped counting, as many attempts past the budget as it held connections
# open. Here nothing is reserved while two bodies (a Content-Length one and
# a chunked one) are incomplete; a complete request meanwhile is decided on
# the budget as it is; each slow one is decided when its body is in. The
# same over HTTP/2, with and without a content-length.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use PgTest;
use PgH2;

my $redis = start_redis();
my $up    = start_upstream();
my $ng = start_nginx(<<'CONF', redis => $redis, upstream => $up, workers => 2);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=5s;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy ip key=$remote_addr max_failures=2 window=10m lockout=10m;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT_H2%% http2;
        location = /login {
            pairguard ip;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /h2 {
            pairguard ip;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /fb {
            pairguard ip;
            pairguard_failure_status 404;
            client_max_body_size 10;
            error_page 400 413 = @fallback;
            proxy_pass http://backend/status/404;
        }
        location @fallback { rewrite ^ /status/404 break; proxy_pass http://backend; }
        location = /open {
            pairguard ip;
            pairguard_failure_status 404;
            proxy_request_buffering off;
            proxy_pass http://backend/status/404;
        }
    }
}
CONF

# a POST whose headers and first byte of body are sent; the rest later
sub started ($from, $path, $chunked) {
    my $s = IO::Socket::INET->new(LocalAddr => $from, PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp')
        or die "connect: $!";
    $s->autoflush(1);
    my $framing = $chunked ? "Transfer-Encoding: chunked\r\n\r\n5\r\nx" : "Content-Length: 5\r\n\r\nx";
    print $s "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n$framing";
    return $s;
}
sub finished ($s, $chunked) {
    print $s $chunked ? "xxxx\r\n0\r\n\r\n" : 'xxxx';
    return http_answer($s, timeout => 10)->{status};
}

# one client address per case (a lock is also kept by the node)
for my $case (['127.0.6.1', '/login', 'proxy_request_buffering on'], ['127.0.6.2', '/open', 'proxy_request_buffering off']) {
    my ($from, $path, $what) = @$case;
    $up->reset;
    my @before = $redis->guard_keys;
    my ($a1, $a2) = (started($from, $path, 0), started($from, $path, 1));
    sleep 0.5;
    my @k = $redis->guard_keys;
    is(scalar @k, scalar @before, "$what: nothing reserved while two bodies are incomplete") or diag explain \@k;
    is(http($ng->port, 'POST', $path, body => 'xxxxx', from => $from)->{status}, 404,
       '  a complete request meanwhile is decided on the budget as it is: let through (a failure)');
    is(finished($a1, 0), 404, '  the first slow body, in: reserved and let through (the second failure: a lock)');
    is(finished($a2, 1), 429, '  the second, in: refused');
    is($up->count('/status/404'), 2, '  the upstream saw max_failures attempts');
    is(http($ng->port, 'POST', $path, body => 'xxxxx', from => $from)->{status}, 429, '  the key is locked');
}

# HTTP/2: two streams whose bodies (one with a content-length, one
# without) are incomplete reserve nothing; each is decided when its last
# DATA frame is in
{
    $up->reset;
    my @before = $redis->guard_keys;
    my $h2 = PgH2->new($ng->port("PORT_H2"));
    my $s1 = $h2->request(method => 'POST', path => '/h2', end => 0, headers => { 'content-length' => 5 });
    my $s2 = $h2->request(method => 'POST', path => '/h2', end => 0);
    $h2->data($_, 'x') for $s1, $s2;
    sleep 0.5;
    my @k = $redis->guard_keys;
    is(scalar @k, scalar @before, 'HTTP/2: nothing reserved while two streams\' bodies are incomplete');
    is(http($ng->port, 'POST', '/h2', body => 'xxxxx')->{status}, 404, '  a complete request meanwhile: let through');
    $h2->data($s1, 'xxxx', 1);
    is($h2->wait_for(5, $s1)->{$s1}, 404, '  the first stream, in: let through (a lock)');
    $h2->data($s2, 'xxxx', 1);
    is($h2->wait_for(5, $s2)->{$s2}, 429, '  the second: refused');
    is($up->count('/status/404'), 2, '  the upstream saw max_failures attempts');
    $h2->close;
}

# A body that cannot be read (past client_max_body_size, a malformed chunk)
# is answered with nginx's own error page: error_page would carry it to a
# location without the guard, to the application, before anything was
# reserved for it
{
    $up->reset;
    my @st;
    for my $i (1 .. 3) {
        push @st, http($ng->port, 'POST', '/fb', from => '127.0.6.4', timeout => 5,
            raw => "POST /fb HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                 . "14\r\n" . ('x' x 20) . "\r\n0\r\n\r\n")->{status};
        push @st, http($ng->port, 'POST', '/fb', from => '127.0.6.4', timeout => 5,
            raw => "POST /fb HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                 . "5\r\nabcde\r\nZZ")->{status};
    }
    is("@st", '413 400 413 400 413 400', 'bodies that cannot be read get 413 and 400, not the error_page location');
    is($up->count, 0, '  and reach no upstream');
}

# a request without a body is not held for one
is(http_get($ng->port, '/login', from => '127.0.6.3')->{status}, 404, 'a GET is decided at once');
done();
