# A key read from a header, a cookie or a query argument that the request
# gives twice with different values, or in a spelling nginx does not read
# and a backend does, is refused with 400 invalid_header: nginx's
# $http_x_account, $cookie_sid and $arg_user read the first, a backend may
# read the last (PHP) or both, so rotating the first while the second names
# the victim would guess without limit. A dry-run location lets it through.
# Headers nginx joins itself ($http_x_forwarded_for, $http_cookie) and
# headers no key reads change nothing.
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
    pairguard_redis 127.0.0.1:%%REDIS_PORT%%;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy acct   key=$http_x_account max_failures=2 window=1m lockout=1m;
    pairguard_policy sess   key=$cookie_sid max_failures=2 window=1m lockout=1m;
    pairguard_policy fwd    key=$http_x_forwarded_for max_failures=100 window=1m lockout=1m;
    pairguard_policy usr    key=$arg_user max_failures=2 window=1m lockout=1m;
    pairguard_policy ssn    key=$cookie_session_id max_failures=2 window=1m lockout=1m;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /login  { pairguard acct; proxy_pass http://backend/status/401; }
        location = /cookie { pairguard sess; proxy_pass http://backend/status/401; }
        location = /fwd    { pairguard fwd;  proxy_pass http://backend/status/200; }
        location = /query  { pairguard usr;  proxy_pass http://backend/status/401; }
        location = /ssn    { pairguard ssn;  proxy_pass http://backend/status/401; }
        location = /dry    { pairguard sess; pairguard_dry_run on; proxy_pass http://backend/status/401; }
    }
}
CONF
my $P = $ng->port;

sub summary ($r) { $r->{status} . ' ' . (($r->{json} // {})->{error} // '') }
sub get ($path, @h) { http_get($P, $path, headers => [@h]) }

# the victim is locked
is(join(' ', map { get('/login', ['X-Account', 'victim'])->{status} } 1 .. 3), '401 401 429', 'victim: two guesses, then locked');
$up->reset;

# rotating the first copy while the second names the victim
my @st = map { summary(get('/login', ['X-Account', "random$_"], ['X-Account', 'victim'])) } 1 .. 3;
is_deeply(\@st, [('400 invalid_header') x 3], 'X-Account twice is refused with 400 invalid_header');
is(summary(get('/login', ['X-Account', 'random'], ['x-account', 'victim'])), '400 invalid_header',
   '  whatever the case of the second');
is($up->count, 0, 'none reached the upstream');
is(get('/login', ['X-Account', 'someone'], ['X-Other', 'x'], ['X-Other', 'y'])->{status}, 401,
   'a header no key reads may repeat');

# cookies: two of one name in one header, or in two Cookie headers
is(join(' ', map { get('/cookie', ['Cookie', 'sid=victim'])->{status} } 1 .. 3), '401 401 429', 'sid=victim: locked');
$up->reset;
is(summary(get('/cookie', ['Cookie', 'sid=random; sid=victim'])), '400 invalid_header',
   'sid twice in one Cookie header is refused');
is(summary(get('/cookie', ['Cookie', 'sid=random'], ['Cookie', 'SID=victim'])), '400 invalid_header',
   'sid in two Cookie headers (any case) is refused');
is(get('/cookie', ['Cookie', 'sid=other; theme=dark; xsid=1'])->{status}, 401, 'one sid among other cookies passes');
is($up->count, 1, 'only that one reached the upstream');

# a spelling nginx does not read but a backend does (PHP decodes cookie
# names and reads ". [" as "_")
$up->reset;
is(summary(get('/cookie', ['Cookie', '%73id=victim'])), '400 invalid_header',
   'sid spelled %73id (nginx reads no sid, PHP reads sid=victim) is refused');
is(get('/ssn', ['Cookie', 'session_id=victim'])->{status}, 401, 'session_id=victim: a guess');
is(get('/ssn', ['Cookie', 'session_id=victim'])->{status}, 401, '  another');
is(summary(get('/ssn', ['Cookie', 'session.id=victim; session_id=random'])), '400 invalid_header',
   'session.id beside session_id (PHP reads both as session_id) is refused');
# copies of one value are one value: a browser's host-only and domain cookie
is(get('/cookie', ['Cookie', 'sid=same; sid=same'])->{status}, 401, 'two copies of one value pass');
is(get('/login', ['X-Account', 'same'], ['X-Account', 'same'])->{status}, 401, '  as do two equal headers');

# query arguments: nginx reads the first, PHP the last
is(join(' ', map { get("/query?user=victim")->{status} } 1 .. 3), '401 401 429', 'user=victim in the query: locked');
$up->reset;
is(summary(get("/query?user=random&user=victim")), '400 invalid_header', 'user twice in the query is refused');
is(summary(get("/query?USER=random&user=victim")), '400 invalid_header', '  whatever the case of the first');
is(summary(get("/query?us%65r=victim")), '400 invalid_header', '  as is a spelling nginx does not read');
is(summary(get("/query?user[]=victim")), '400 invalid_header', '  or user[]');
is(get("/query?user=other&x=1&user=other")->{status}, 401, 'two equal copies pass');
is($up->count, 1, 'only the clear one reached the upstream');

# every spelling of one value is one key: nginx reads the raw text, a
# backend decodes it
$up->reset;
is(get("/query?user=%76ictim")->{status}, 429, 'user=%76ictim is victim, locked');
is(get("/query?user=v%69ctim")->{status}, 429, '  as is v%69ctim');
is(get('/cookie', ['Cookie', 'sid=%76ictim'])->{status}, 429, 'sid=%76ictim is victim, locked');
is(get('/cookie', ['Cookie', 'sid="victim"'])->{status}, 429, 'sid="victim" (quoted) too');
is($up->count, 0, 'none reached the upstream');
# where nginx splits differently from a backend
is(summary(get('/cookie', ['Cookie', 'sid=victim,x1; sid=victim'])), '400 invalid_header',
   'a comma inside a cookie value (nginx reads "victim,x1", a backend the second sid) is refused');
is(summary(get('/cookie', ['Cookie', "a=1;\tsid=victim"])), '400 invalid_header',
   'a tab before the name (nginx reads no sid, a backend does) is refused');
is(summary(get("/query?user=r1&a=1;user=victim")), '400 invalid_header',
   'a second copy after a ";" (Rack 2, Perl CGI) is refused');

# cookie values backends read differently: only RFC 6265 cookie-octets
# (Python unescapes "\151", strips non-ASCII blanks, ends a pair at a space)
is(summary(get('/cookie', ['Cookie', 'sid="v\\151ctim"'])), '400 invalid_header', 'a backslash escape is refused');
is(summary(get('/cookie', ['Cookie', 'sid=decoy1 sid=victim'])), '400 invalid_header', 'a space inside the value is refused');
is(summary(get('/cookie', ['Cookie', "sid=victim\xa0"])), '400 invalid_header', 'a non-ASCII byte is refused');
is(summary(get('/cookie', ['Cookie', "sid=decoy2; sid\x1c=victim"])), '400 invalid_header',
   'a name a backend trims to sid is another copy');
is(get('/cookie', ['Cookie', 'sid=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_; _ga=GA1.2.3.4'])->{status}, 401,
   'a JWT-like value passes');

# a dry run never refuses: it logs what it would have done
$up->reset;
is(get('/dry', ['Cookie', 'sid=a; sid=b'])->{status}, 401, 'a dry-run location lets the ambiguous cookie through');
like($ng->error_log, qr/dry run, would refuse, policy "sess", invalid_header/, '  and logs that it would have refused it');

# what nginx joins itself is one value: nothing to tell apart
is(get('/fwd', ['X-Forwarded-For', '10.0.0.1'], ['X-Forwarded-For', '10.0.0.2'])->{status}, 200,
   '$http_x_forwarded_for is every header joined: a repeat passes');

done();
