# A refusal is always answered: a locked key, a missing required key and a
# store that is down under `store_down deny` all get their own status and
# JSON body, even when the request body cannot be discarded (a malformed
# chunked body), and even with `pairguard` at server level and the stock
# `error_page 500 ... /50x.html` that would send a 500 back into the guard.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down %%DOWN%%;
    pairguard_policy ip   key=$remote_addr max_failures=2 window=30s lockout=30s;
    pairguard_policy need key=$http_x_account max_failures=5 window=30s lockout=30s key_required;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        pairguard ip;
        error_page 500 502 503 504 /50x.html;
        location = /50x.html { root %%TESTDIR%%; }

        location = /api  { pairguard_failure_status 404; proxy_pass http://backend/status/404; }
        location = /need { pairguard need; proxy_pass http://backend/status/200; }
    }
}
CONF
write_file(testdir() . '/50x.html', "<html>oops</html>\n");
my $ng = start_nginx($conf, redis => $redis, upstream => $up, vars => { down => 'local' });
my $port = $ng->port;

sub malformed ($path, %h) {
    my $extra = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    return http($port, 'POST', $path, timeout => 5,
        raw => "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n$extra"
             . "Transfer-Encoding: chunked\r\n\r\nZZZ\r\n");
}

# lock the client
is(http($port, 'POST', '/api', from => '127.0.0.20')->{status}, 404, 'a first wrong answer goes through') for 1 .. 2;
my $r = http($port, 'POST', '/api', from => '127.0.0.20');
is($r->{status}, 429, 'the client is locked after two failures');

$r = http($port, 'POST', '/api', from => '127.0.0.20', timeout => 5,
    raw => "POST /api HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n");
ok(!$r->{timeout}, 'the locked client itself, with a malformed chunked body, is answered');
is($r->{status}, 429, '  with 429, not a 500');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, '  with Retry-After');
is(($r->{json} // {})->{error}, 'too_many_attempts', '  with the too_many_attempts body');
like($r->{headers}{connection} // 'close', qr/close/i, '  and the connection is not kept alive');

$r = http($port, 'POST', '/need', from => '127.0.0.21', timeout => 5,
    raw => "POST /need HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n");
ok(!$r->{timeout}, 'a request without its required key and a malformed body is answered');
is($r->{status}, 400, '  with 400');
is(($r->{json} // {})->{error}, 'key_required', '  as key_required');

# many at once: none may stay open
my @raw = map {
    "POST /api HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n"
} 1 .. 20;
my @codes = map { http($port, 'POST', '/api', from => '127.0.0.20', timeout => 5, raw => $_)->{status} } @raw;
is(scalar(grep { $_ == 429 } @codes), 20, 'twenty malformed requests from a locked client all get 429');

# store down, deny
my $deny = start_nginx($conf, redis => free_port(), upstream => $up, vars => { down => 'deny' });
$r = http($deny->port, 'POST', '/api', timeout => 5,
    raw => "POST /api HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n");
ok(!$r->{timeout}, 'store_down deny with a malformed body is answered');
is($r->{status}, 503, '  with 503');
is(($r->{json} // {})->{error}, 'store_unavailable', '  as store_unavailable');

unlike($ng->error_log . $deny->error_log, qr/open socket .* left in connection/, 'no connection is left open at shutdown') ;
done();
