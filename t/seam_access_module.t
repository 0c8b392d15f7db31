# Another module's access handler (here access_by_lua, loaded after this
# module) that checks the key itself: its refusal is a wrong guess, classified
# like an upstream's answer (403 is a failure status by default), whatever an
# error_page makes of it, and whether the handler answers at once or after
# waiting (ngx.sleep: it returns NGX_AGAIN first). Only allow/deny's 403
# refuses the client's address and counts nothing, also when another access
# handler in the same location passed the request.
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

# deny refuses the outsider's address (with the right PIN, so that the Lua
# check passes): nothing counted, the allowed client keeps its budget
@st = map { req('/pindeny/200', 'dora', '1234', $OUT) } 1 .. 6;
is("@st", '302 302 302 302 302 302', "deny's 403 after the Lua check passed: never 429");
is(req('/pindeny/200', 'dora', '1234'), 200, 'the allowed client reaches the upstream');
@st = map { req('/pindeny/401', 'dora', '1234') } 1 .. 4;
is("@st", '401 401 401 429', "the allowed client's own failures lock at the third");
# the same location's Lua check refusing the outsider's wrong PIN is a guess
@st = map { req('/pindeny/200', 'eve', "000$_", $OUT) } 1 .. 4;
is("@st", '302 302 302 429', "the Lua check's refusal of a wrong PIN counts in the same location");

my @keys = $redis->guard_keys;
is(scalar @keys, 5, 'one key in Redis per account that failed (amy, ben, cat, dora, eve)');

done();
