# The guard reserves in PREACCESS, before the access phase: a client that
# allow/deny refuses in the guarded location gets nginx's 403 before anything
# judged its key. That 403 is not a guess: an outsider sending a victim's
# account from a denied address must not lock the account for the clients
# allowed there (a hostile review locked one with four requests), nor reset
# its count through an error_page that turns the 403 into a 302 or a 200.
# auth_basic's 401 in the same phase is a wrong guess and still counts, as
# does an upstream's 403 after the access phase.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $dir   = testdir();
# user "u", password "right" (apr1 made once with `openssl passwd -apr1 -salt pgsalt right`)
write_file("$dir/htpasswd", "u:\$apr1\$pgsalt\$MQ//fZidl.akGeLQW82TL.\n");
my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy acct key=$http_x_account max_failures=3 window=15m lockout=15m;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location /gw/ {
            allow 127.0.0.2; deny all;
            pairguard acct;
            proxy_pass http://backend/status/;
        }
        location /page/ {
            allow 127.0.0.2; deny all;
            pairguard acct;
            error_page 403 /denied.html;
            proxy_pass http://backend/status/;
        }
        location = /denied.html { return 403 "denied\n"; }
        location /redir/ {
            allow 127.0.0.2; deny all;
            pairguard acct;
            error_page 403 = @login;
            proxy_pass http://backend/status/;
        }
        location @login { return 302 /login; }
        location /basic403/ {
            auth_basic "pg";
            auth_basic_user_file %%DIR%%/htpasswd;
            pairguard acct;
            error_page 401 =403 /forbidden.html;
            proxy_pass http://backend/status/;
        }
        location = /forbidden.html { return 403 "no\n"; }
        location /basic/ {
            auth_basic "pg";
            auth_basic_user_file %%DIR%%/htpasswd;
            pairguard acct;
            proxy_pass http://backend/status/;
        }
    }
}
CONF
$conf =~ s/%%DIR%%/$dir/g;
my $ng = start_nginx($conf, redis => $redis, upstream => $up);
my $P  = $ng->port;

sub req ($path, $account, $from) {
    return http_get($P, $path, headers => { 'X-Account' => $account }, from => $from)->{status};
}
my ($IN, $OUT) = ('127.0.0.2', '127.0.0.1');

is(req('/gw/200', 'victim', $IN), 200, 'an allowed client reaches the upstream');
my @st = map { req('/gw/200', 'victim', $OUT) } 1 .. 6;
is("@st", '403 403 403 403 403 403', 'a denied client gets 403 every time, never the guard\'s 429');
is(req('/gw/200', 'victim', $IN), 200, 'and the account is not locked for the allowed client');

# a 403 page from another location may be an error_page made of
# auth_basic's 401 (a guess): it counts (a known limit, README)
@st = map { req('/page/200', 'victim2', $OUT) } 1 .. 4;
is("@st", '403 403 403 429', 'a 403 served by an error_page location counts as before');

# an allowed guesser fails twice; a denied request answered 302 by an
# error_page must not reset the count; the third failure locks
@st = map { req('/redir/401', 'carol', $IN) } 1 .. 2;
is("@st", '401 401', 'two wrong guesses from an allowed client');
is(req('/redir/200', 'carol', $OUT), 302, 'a denied request is answered 302 by error_page');
@st = map { req('/redir/401', 'carol', $IN) } 1 .. 2;
is("@st", '401 429', 'the 302 reset nothing: the third failure locks the account');

# the guard still counts what the allowed clients' upstream says
@st = map { req('/gw/403', 'bob', $IN) } 1 .. 4;
is("@st", '403 403 403 429', "an upstream's 403 after the access phase is a wrong guess");

# auth_basic's 401 is a wrong guess
sub basic ($user, $pass) {
    require MIME::Base64;
    my $auth = 'Basic ' . MIME::Base64::encode_base64("$user:$pass", '');
    return http_get($P, '/basic/200', headers => { 'X-Account' => 'dave', Authorization => $auth })->{status};
}
is(basic('u', 'right'), 200, 'the right password passes auth_basic');
@st = map { basic('u', "wrong$_") } 1 .. 4;
is("@st", '401 401 401 429', 'auth_basic\'s 401s count and lock the account');

# auth_basic's 401 turned into a 403 page by error_page is still a guess
{
    require MIME::Base64;
    my @s = map {
        http_get($P, '/basic403/200', headers => { 'X-Account' => 'erin',
            Authorization => 'Basic ' . MIME::Base64::encode_base64("u:bad$_", '') })->{status}
    } 1 .. 4;
    is("@s", '403 403 403 429', 'auth_basic 401s that error_page makes 403 still lock the account');
}

done();
