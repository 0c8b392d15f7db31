# Ambiguous bodies (SPEC 2, issue 8 item 7): a policy keyed on a body field
# refuses a body in which that field occurs more than once (the guard would
# key on one copy, the upstream may read the other), answers 415 to a body it
# cannot parse rather than skipping it, and reads text parts of
# multipart/form-data. A key field whose value is an array or an object, or
# spelled as one (`account[]=`), is refused too. A duplicated field that no
# key uses, and an absent field, change nothing.
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
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy login   key=$pairguard_body_account max_failures=3 window=1m lockout=1m;
    pairguard_policy profile key=$pairguard_body_account max_failures=100 window=1m lockout=1m;
    pairguard_policy folded  key=$pairguard_body_account max_failures=2 window=1m lockout=1m key_normalize key_required;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        # every attempt fails: a guess
        location = /login {
            pairguard login;
            proxy_pass http://backend/status/401;
        }

        # a rollout: a dry run never refuses, not even a body it cannot read
        location = /dry-login {
            pairguard login;
            pairguard_dry_run on;
            proxy_pass http://backend/status/401;
        }

        # accounts matched without regard to case or surrounding blanks
        location = /folded {
            pairguard folded;
            proxy_pass http://backend/status/401;
        }

        # the upstream echoes what it got
        location = /profile {
            pairguard profile;
            proxy_set_header X-Seen-Account $pairguard_body_account;
            proxy_pass http://backend/echo;
        }
    }
}
CONF
my $P = $ng->port;

sub ctype ($t) { (headers => [['Content-Type', $t]]) }
sub post ($path, $type, $body) { http($P, 'POST', $path, body => $body, defined $type ? ctype($type) : ()) }
sub form ($path, $body) { post($path, 'application/x-www-form-urlencoded', $body) }
sub json ($path, $body) { post($path, 'application/json', $body) }

# multipart/form-data with boundary B: [name, value] text parts, or
# [name, value, filename] file parts
sub multipart ($path, @parts) {
    my $b = 'b0undary-7MA4YWxk';
    my $body = '';
    for my $p (@parts) {
        my ($name, $value, $file) = @$p;
        $body .= "--$b\r\nContent-Disposition: form-data; name=\"$name\""
            . (defined $file ? "; filename=\"$file\"\r\nContent-Type: text/plain" : '')
            . "\r\n\r\n$value\r\n";
    }
    $body .= "--$b--\r\n";
    return post($path, "multipart/form-data; boundary=\"$b\"", $body);
}
sub summary ($r) { $r->{status} . ' ' . (($r->{json} // {})->{error} // '') }

# --- a duplicated field that a key uses ----------------------------------------------

$up->reset;
my $r = form('/profile', 'account=random&account=victim');
is($r->{status}, 400, 'account=random&account=victim against a policy keyed on the account is refused with 400');
is_deeply($r->{json}, { error => 'invalid_body' }, 'the refusal says invalid_body');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'as JSON');
is(summary(form('/profile', 'account=victim&x=1&%61ccount=random')), '400 invalid_body',
    'a repeat spelled with a percent escape is the same field and is refused');
is(summary(json('/profile', '{"account":"random","account":"victim"}')), '400 invalid_body',
    'a JSON body with the key field twice is refused with 400 invalid_body');
is(summary(json('/profile', '{"account":"random","\u0061ccount":"victim"}')), '400 invalid_body',
    'a JSON repeat spelled with a \u escape is refused too');
is(summary(multipart('/profile', [account => 'random'], [account => 'victim'])), '400 invalid_body',
    'a multipart body with two parts of the key field is refused with 400 invalid_body');
is(summary(multipart('/profile', [account => 'random'], [account => 'victim', 'v.txt'])), '400 invalid_body',
    'a file part that repeats the key field\'s name is refused too');
is($up->count, 0, 'the upstream never saw an ambiguous body');

# --- bodies the guard cannot read ---------------------------------------------------------

$r = post('/profile', 'text/plain', 'account=victim');
is($r->{status}, 415, 'a non-empty text/plain body is refused with 415');
is_deeply($r->{json}, { error => 'unsupported_body' }, 'the refusal says unsupported_body');
is(summary(post('/profile', 'application/octet-stream', "\x00\x01account")), '415 unsupported_body',
    'an application/octet-stream body is refused with 415');
is(summary(post('/profile', undef, "account victim\n")), '415 unsupported_body',
    'a body without Content-Type that is neither JSON nor a form is refused with 415');
is(summary(post('/profile', 'multipart/form-data; boundary=x', "--x\r\nno headers")), '400 invalid_body',
    'a malformed multipart body is refused with 400 invalid_body');
is(summary(post('/profile', 'multipart/form-data', "--x\r\n\r\n--x--")), '400 invalid_body',
    'a multipart body without a boundary parameter is refused with 400 invalid_body');
is(summary(form('/profile', '{"account":"victim"}')), '400 invalid_body',
    'a JSON object sent as a form is refused (an upstream ignoring the Content-Type reads JSON)');
is($up->count, 0, 'the upstream never saw a body the guard could not read');

# --- what passes -----------------------------------------------------------------------------

$r = form('/profile', 'account=alice&tag=1&tag=2');
is($r->{status}, 200, 'a duplicated field that no key uses passes');
is($r->{json}{headers}{'x-seen-account'}, 'alice', '  and the key field is read');
is($r->{json}{body}, 'account=alice&tag=1&tag=2', '  and the body reaches the upstream unchanged');
$r = json('/profile', '{"account":"bob","tags":1,"tags":2}');
is($r->{status}, 200, 'a JSON body with a duplicated field that no key uses passes');
$r = multipart('/profile', [account => 'carol'], [note => 'hello']);
is($r->{status}, 200, 'a multipart body passes');
is($r->{json}{headers}{'x-seen-account'}, 'carol', '  and its text part gives the key field');
$r = multipart('/profile', [account => 'secret', 'account.txt']);
is($r->{status}, 200, 'a file part is not a field: the key is empty and the request passes');
is($r->{json}{headers}{'x-seen-account'} // '', '', '  (the field is empty)');
$r = form('/profile', 'other=1');
is($r->{status}, 200, 'a body without the key field passes (an absent field is an empty key)');
$r = post('/profile', 'text/plain', '');
is($r->{status}, 200, 'an empty body passes whatever its Content-Type');

# --- a multipart text part keys the policy ---------------------------------------------------

$up->reset;
my @st = map { multipart('/login', [account => 'mallory'], [password => "guess$_"])->{status} } 1 .. 3;
is_deeply(\@st, [401, 401, 401], 'three wrong multipart logins for one account reach the upstream');
$r = multipart('/login', [account => 'mallory'], [password => 'guess4']);
is($r->{status}, 429, 'the fourth is refused with 429: the multipart text part keyed the policy');
is($r->{json}{error}, 'too_many_attempts', '  too_many_attempts');
is(form('/login', 'account=mallory&password=x')->{status}, 429,
    'the same account sent as a form is locked too (one key whatever the format)');
is(json('/login', '{"account":"mallory","password":"x"}')->{status}, 429, '  and as JSON');
is(multipart('/login', [account => 'trent'], [password => 'x'])->{status}, 401, 'another account is not locked');
is($up->count, 4, 'only the attempts the guard let through reached the upstream');

# what backends read differently from the first Content-Type or from the
# bytes as sent
$up->reset;
$r = http($P, 'POST', '/login', body => '{"x":"&account=victim&y="}',
    headers => [['Content-Type', 'application/json'], ['Content-Type', 'application/x-www-form-urlencoded']]);
is($r->{status}, 400, 'a body with two Content-Type headers is refused with 400');
is($r->{json}{error}, 'invalid_body', '  as invalid_body');
$r = http($P, 'POST', '/login', body => "\x1f\x8b\x08\x00compressed",
    headers => [['Content-Type', 'application/x-www-form-urlencoded'], ['Content-Encoding', 'gzip']]);
is($r->{status}, 415, 'a coded (gzip) body is refused with 415: the guard cannot read what a backend may inflate');
is($r->{json}{error}, 'unsupported_body', '  as unsupported_body');
# spellings some backend reads as "account"
for my $case (['{"Account":"victim"}', 'json', 'another case (ASP.NET binds names case-insensitively)'],
              ['+account=victim', 'form', 'a leading blank (PHP drops it)'],
              ['account=decoy&account%00=victim', 'form', 'a NUL in the name (PHP cuts there)']) {
    my ($body, $kind, $what) = @$case;
    $r = $kind eq 'json' ? json('/login', $body) : form('/login', $body);
    is($r->{status}, 400, "the key field spelled with $what is refused with 400");
}
is($up->count, 0, 'none of them reached the upstream');

# a key value that some backend reads out of an array or an object, while
# mallory is locked: each would have been an empty key, the policy skipped
for my $case (['{"account":["mallory"],"password":"x"}', 'json', 'a JSON array (a JavaScript string conversion reads "mallory")'],
              ['{"account":{"$eq":"mallory"},"password":"x"}', 'json', 'a JSON object (MongoDB reads {"$eq": ...})'],
              ['account[]=mallory&password=x', 'form', 'account[] (PHP, Rails and qs read an array named account)'],
              ['account%5B0%5D=mallory&password=x', 'form', 'account[0], percent-escaped'],
              ['account[name]=mallory&password=x', 'form', 'account[name] (an object named account)']) {
    my ($body, $kind, $what) = @$case;
    $r = $kind eq 'json' ? json('/login', $body) : form('/login', $body);
    is(summary($r), '400 invalid_body', "the key field as $what is refused with 400 invalid_body");
}
is(summary(multipart('/login', ['account[]' => 'mallory'], [password => 'x'])), '400 invalid_body',
    'and as a multipart part named account[]');
is(summary(json('/login', '{"account":null,"password":"x"}')), '401 ',
    'a JSON null is an absent field: the policy is skipped');
is($up->count, 1, 'only that one reached the upstream');

# key_normalize: every spelling of one account shares its budget
$up->reset;
@st = map { json('/folded', qq({"account":"$_","password":"x"}))->{status} } ('Bob', ' BOB ');
is_deeply(\@st, [401, 401], 'key_normalize: "Bob" and " BOB " are two guesses');
is(summary(json('/folded', '{"account":"bob","password":"x"}')), '429 too_many_attempts',
    '  on one account: "bob" is locked after them');
is(summary(form('/folded', 'account=%09bOB%0D%0A&password=x')), '429 too_many_attempts',
    '  and so is "\tbOB\r\n" in a form');
is(json('/folded', '{"account":"Bobby","password":"x"}')->{status}, 401, '  "Bobby" is another account');
is(summary(json('/folded', '{"account":"   ","password":"x"}')), '400 key_required',
    '  blanks alone are an empty key (key_required)');
is($up->count, 3, 'the upstream saw the three guesses the guard let through');

# a dry run lets through what it would have refused, and says so
$up->reset;
is(post('/dry-login', 'text/plain', 'account=victim')->{status}, 401, 'a dry run lets an unreadable body through');
is(json('/dry-login', '{"account":["x"]}')->{status}, 401, '  and a key field given as an array');
is($up->count, 2, '  both reached the upstream');
like($ng->error_log, qr/dry run, would refuse, policy "login", unsupported_body/, '  the log says it would have refused the body');
like($ng->error_log, qr/dry run, would refuse, policy "login", invalid_body/, '  and the array');

my @skip = map { form('/login', "user=x$_")->{status} } 1 .. 5;
is_deeply(\@skip, [(401) x 5], 'requests without the key field are never locked: the policy is skipped');

done();
