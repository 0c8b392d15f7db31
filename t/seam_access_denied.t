# The guard reserves in PREACCESS, before the access phase: a client that
# allow/deny refuses in the guarded location gets nginx's 403 before anything
# judged its key. That 403 is not a guess: an outsider sending a victim's
# account from a denied address must not lock the account for the clients
# allowed there (a hostile review locked one with four requests), nor reset
# its count, whatever an error_page makes of the 403 (a 302, a 200, a page
# from another location, `return 444`). What comes after the refusal still
# counts: an upstream that judged the request (an error_page into another
# proxied location: its failures count, its success resets nothing), and a
# location of the same policy the request then passes into (error_page 403
# = @public: judged there as anywhere; a review guessed without limit
# through it). auth_basic's 401 in the same phase is a wrong guess and still
# counts, whatever an error_page makes of it (a 403 page, a 302 to a login
# page), unless it leads into a location of the same policy whose upstream
# then decides (auth_basic for people, the app's own login for the others:
# its right passwords must not lock). The refusal is noted where the access
# phase makes it (every ACCESS entry of the phase engine runs through the
# module's checker).
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
    pairguard_policy user key=$pairguard_body_username max_failures=3 window=15m lockout=15m;

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
        location /other/ {
            allow 127.0.0.2; deny all;
            pairguard acct;
            error_page 403 = /fallback;
            proxy_pass http://backend/status/;
        }
        location = /fallback { proxy_pass http://backend/status/401; }
        location /other2/ {
            allow 127.0.0.2; deny all;
            pairguard acct;
            error_page 403 = /fallback200;
            proxy_pass http://backend/status/;
        }
        location = /fallback200 { proxy_pass http://backend/status/200; }
        location = /office/login {
            allow 127.0.0.2; deny all;
            pairguard user;
            error_page 403 = @public;
            proxy_pass http://backend/api/login;
        }
        location = /mixed/login {
            auth_basic "pg";
            auth_basic_user_file %%DIR%%/htpasswd;
            pairguard user;
            error_page 401 = @public;
            proxy_pass http://backend/api/login;
        }
        location @public {
            pairguard user;
            rewrite ^ /api/login break;
            proxy_pass http://backend;
        }
        location /drop/ {
            allow 127.0.0.2; deny all;
            pairguard acct;
            error_page 403 = /gone;
            proxy_pass http://backend/status/;
        }
        location = /gone { return 444; }
        location /basiclogin/ {
            auth_basic "pg";
            auth_basic_user_file %%DIR%%/htpasswd;
            pairguard acct;
            error_page 401 = @login;
            proxy_pass http://backend/status/;
        }
        location /basicdrop/ {
            auth_basic "pg";
            auth_basic_user_file %%DIR%%/htpasswd;
            pairguard acct;
            error_page 401 = /gone;
            proxy_pass http://backend/status/;
        }
        location /any/ {
            satisfy any;
            allow 127.0.0.2; deny all;
            auth_basic "pg";
            auth_basic_user_file %%DIR%%/htpasswd;
            pairguard acct;
            proxy_pass http://backend/status/;
        }
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

# what an error_page makes of deny's 403 counts nothing either; the allowed
# client then still has its whole budget (three failures lock, not fewer)
sub budget_left ($path, $account, $what) {
    is(req("${path}200", $account, $IN), 200, "$what: the allowed client reaches the upstream");
    my @s = map { req("${path}401", $account, $IN) } 1 .. 4;
    is("@s", '401 401 401 429', "$what: the allowed client's own failures lock at the third");
}
@st = map { req('/page/200', 'victim2', $OUT) } 1 .. 6;
is("@st", '403 403 403 403 403 403', 'deny with a 403 page from another location: never 429');
budget_left('/page/', 'victim2', 'a 403 page');

# an error_page into another proxied location hands the request to an
# upstream that judges it: its failures count, whichever route led there;
# its success resets nothing (a refusal is no success)
@st = map { req('/other/200', 'victim3', $OUT) } 1 .. 5;
is("@st", '401 401 401 429 429', "deny into another proxied location: that upstream's 401s count");
@st = map { req('/other2/401', 'victim6', $IN) } 1 .. 2;
is("@st", '401 401', 'two wrong guesses from an allowed client');
is(req('/other2/200', 'victim6', $OUT), 200, "deny into another proxied location answering 200");
@st = map { req('/other2/401', 'victim6', $IN) } 1 .. 2;
is("@st", '401 429', "that upstream's 200 reset nothing: the third failure locks");

# deny into a location of the same policy (error_page 403 = @public): the
# request is judged there as anywhere, nothing reserved twice
sub login ($path, $user, $pw, $from = $OUT) {
    return http_post_json($P, $path, { username => $user, password => $pw }, from => $from)->{status};
}
$up->reset;
@st = map { login('/office/login', 'carol', "bad$_") } 1 .. 6;
is("@st", '401 401 401 429 429 429', 'deny into @public of the same policy: wrong passwords lock');
is($up->count('/api/login'), 3, 'the upstream got exactly max_failures guesses');
is(login('/office/login', 'carol', 'carol-password'), 429, 'carol is locked (her right password refused)');
is(login('/office/login', 'carol', 'carol-password', $IN), 429, 'also for the allowed address');

@st = map { req('/drop/200', 'victim4', $OUT) } 1 .. 6;
is("@st", '0 0 0 0 0 0', 'deny into return 444: the connection is closed every time, never 429');
budget_left('/drop/', 'victim4', 'return 444');

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

# auth_basic's 401 made a 302 to a login page (error_page 401 = @login) is
# still a wrong guess, and so is one made `return 444`
sub basic_at ($path, $account, $pass, $from = $IN) {
    require MIME::Base64;
    return http_get($P, $path, from => $from, headers => { 'X-Account' => $account,
        Authorization => 'Basic ' . MIME::Base64::encode_base64("u:$pass", '') })->{status};
}
@st = map { basic_at('/basiclogin/200', 'frank', "bad$_") } 1 .. 4;
is("@st", '302 302 302 429', 'auth_basic 401s that error_page makes a 302 lock the account');
@st = map { basic_at('/basicdrop/200', 'gina', "bad$_") } 1 .. 4;
is("@st", '0 0 0 429', 'auth_basic 401s that error_page makes a 444 lock the account');

# auth_basic for people, the app's login for the others (error_page 401 =
# @public of the same policy): the app's answer decides
@st = map { login('/mixed/login', 'dave', 'dave-password') } 1 .. 5;
is("@st", '200 200 200 200 200', "right passwords through the app's login behind auth_basic never lock");
is(login('/office/login', 'dave', 'dave-password', $IN), 200, 'dave is not locked');
@st = map { login('/mixed/login', 'fred', "bad$_") } 1 .. 4;
is("@st", '401 401 401 429', "wrong passwords through the app's login behind auth_basic lock");

# satisfy any: the denied address with a wrong password gets 401, a guess;
# the allowed address passes without one
is(basic_at('/any/200', 'hank', 'bad', $IN), 200, 'satisfy any: the allowed address passes');
@st = map { basic_at('/any/200', 'hank', "bad$_", $OUT) } 1 .. 4;
is("@st", '401 401 401 429', 'satisfy any: wrong passwords from elsewhere lock the account');

# a reload builds a new phase engine: its access handlers are noted too
$ng->reload;
@st = map { basic_at('/basiclogin/200', 'ivan', "bad$_") } 1 .. 4;
is("@st", '302 302 302 429', 'after a reload: auth_basic 401s made a 302 still lock the account');
@st = map { req('/drop/200', 'victim5', $OUT) } 1 .. 4;
is("@st", '0 0 0 0', 'after a reload: deny into return 444 counts nothing');
is(req('/drop/200', 'victim5', $IN), 200, 'after a reload: the allowed client is not locked out');

done();
