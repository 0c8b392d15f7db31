# Another module's access handler (here access_by_lua, loaded after this
# module) that checks the key itself: its refusal is a wrong guess, classified
# like an upstream's answer (403 is a failure status by default), whatever an
# error_page makes of it, and whether the handler answers at once or after
# waiting (ngx.sleep: it returns NGX_AGAIN first). Only allow/deny's 403
# refuses the client's address and counts nothing. access_by_lua moves its
# own entry of the phase engine to the end of the access phase on the first
# request, so that allow/deny and auth_basic judge first: the module's
# checker must keep that order (a review found Lua running before deny with
# the module's first wrapper: an ngx.exec past deny, and an outsider's
# wrong PINs locking an allowed client), with or without a policy.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my @lua = map { "/usr/lib/nginx/modules/$_.so" } qw(ndk_http_module ngx_http_lua_module);
for (@lua) {
    -f $_ or BAIL_OUT("$_ is missing (libnginx-mod-http-lua; scripts/test.sh installs it)");
}

my $redis = start_redis();
my $up    = start_upstream();
my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy acct key=$http_x_account max_failures=3 window=15m lockout=15m;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location /pin/ {
            pairguard acct;
            access_by_lua_block {
                if ngx.var.http_x_pin ~= "1234" then return ngx.exit(403) end
            }
            proxy_pass http://backend/status/;
        }
        location /pinwait/ {
            pairguard acct;
            access_by_lua_block {
                ngx.sleep(0.001)
                if ngx.var.http_x_pin ~= "1234" then return ngx.exit(403) end
            }
            proxy_pass http://backend/status/;
        }
        location /pinlogin/ {
            pairguard acct;
            access_by_lua_block {
                if ngx.var.http_x_pin ~= "1234" then return ngx.exit(403) end
            }
            error_page 403 = @login;
            proxy_pass http://backend/status/;
        }
        location @login { return 302 /login; }
        location /admin/ {
            allow 127.0.0.2; deny all;
            access_by_lua_block {
                if ngx.var.arg_v2 then return ngx.exec("/internal/admin") end
            }
            proxy_pass http://backend/status/;
        }
        location = /internal/admin { internal; proxy_pass http://backend/status/200; }
        location /exec/ {
            pairguard acct;
            access_by_lua_block { return ngx.exec("/exec-target") }
            proxy_pass http://backend/status/;
        }
        location = /exec-target { return 200 "exec target\n"; }
        location /execnamed/ {
            pairguard acct;
            access_by_lua_block { return ngx.exec("@named") }
            proxy_pass http://backend/status/;
        }
        location @named { return 200 "named\n"; }
        location /office/ {
            allow 127.0.0.2; deny all;
            pairguard acct;
            error_page 403 = @capture;
            proxy_pass http://backend/status/;
        }
        location @capture {
            content_by_lua_block {
                local res = ngx.location.capture("/check/" .. ngx.var.arg_s)
                ngx.status = res.status
                ngx.print(res.body)
            }
        }
        location /check/ { internal; proxy_pass http://backend/status/; }
        location /pindeny/ {
            allow 127.0.0.2; deny all;
            pairguard acct;
            access_by_lua_block {
                if ngx.var.http_x_pin ~= "1234" then return ngx.exit(403) end
            }
            error_page 403 = @login;
            proxy_pass http://backend/status/;
        }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis, upstream => $up, extra_modules => \@lua);
my $P  = $ng->port;
my ($IN, $OUT) = ('127.0.0.2', '127.0.0.1');

sub req ($path, $account, $pin, $from = $IN) {
    return http_get($P, $path, from => $from, headers => { 'X-Account' => $account, 'X-Pin' => $pin })->{status};
}

is(req('/pin/200', 'amy', '1234'), 200, 'the right PIN passes the Lua check');
my @st = map { req('/pin/200', 'amy', "000$_") } 1 .. 4;
is("@st", '403 403 403 429', "the Lua check's 403s are wrong guesses: the third locks the account");
is(req('/pin/200', 'amy', '1234'), 429, 'the locked account is refused even with the right PIN');

@st = map { req('/pinwait/200', 'ben', "000$_") } 1 .. 4;
is("@st", '403 403 403 429', 'a Lua check that waits first: its 403s lock the account too');

@st = map { req('/pinlogin/200', 'cat', "000$_") } 1 .. 4;
is("@st", '302 302 302 429', 'a Lua 403 that error_page makes a 302 still counts');

# deny runs before the Lua check, as without this module: an outsider's
# ngx.exec never runs, and its requests count nothing, right PIN or wrong
for my $round (1, 2) {
    is(http_get($P, '/admin/200?v2=1', from => $OUT)->{status}, 403,
       "deny refuses the outsider before Lua's ngx.exec runs (request $round)");
}
is(http_get($P, '/admin/200?v2=1', from => $IN)->{status}, 200, "the allowed client gets Lua's ngx.exec");
@st = map { req('/pindeny/200', 'dora', $_ % 2 ? '1234' : "000$_", $OUT) } 1 .. 6;
is("@st", '302 302 302 302 302 302', "deny's 403 (made a 302) counts nothing: never 429");
is(req('/pindeny/200', 'dora', '1234'), 200, 'the allowed client reaches the upstream');
# past deny, the Lua check's refusal of a wrong PIN counts in the same location
@st = map { req('/pindeny/200', 'dora', "000$_") } 1 .. 4;
is("@st", '302 302 302 429', "the allowed client's wrong PINs lock at the third");

# ngx.exec finishes the request inside the access handler (NGX_DONE): the
# module's checker must not touch it afterwards (a review saw valgrind's
# invalid reads of the freed request; the sanitizer run covers this file)
for my $i (1, 2) {
    my $r = http_get($P, '/exec/200', headers => { 'X-Account' => 'gus' });
    is("$r->{status} $r->{body}", "200 exec target\n", "ngx.exec from the access phase (request $i)");
    $r = http_get($P, '/execnamed/200', headers => { 'X-Account' => 'gus' });
    is("$r->{status} $r->{body}", "200 named\n", "ngx.exec into a named location (request $i)");
}

# deny into a location that asks the application through a subrequest
# (ngx.location.capture): the subrequest's failures count
@st = map { http_get($P, '/office/x?s=401', from => $OUT, headers => { 'X-Account' => 'hal' })->{status} } 1 .. 5;
is("@st", '401 401 401 429 429', "deny into a subrequest's check: its 401s lock the account");

my @keys = $redis->guard_keys;
is(scalar @keys, 5, 'one key in Redis per account that failed (amy, ben, cat, dora, hal)');

done();
