# Reading request bodies for $pairguard_body_NAME keys: JSON and form bodies,
# content types written in odd ways, bodies that arrive in pieces, bodies that
# do not parse (400) or do not fit in memory (413) — the upstream is contacted
# only when the guard could decide.
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
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy code key=$pairguard_body_pairing_code max_failures=100 window=10s lockout=10s;
    pairguard_policy ip   key=$remote_addr max_failures=100 window=10s lockout=10s;

    client_body_buffer_size 1k;
    client_max_body_size 4m;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        # the upstream echoes what it got, including the field the guard saw
        location = /echo {
            pairguard code;
            proxy_set_header X-Seen-Code $pairguard_body_pairing_code;
            proxy_pass http://backend;
        }

        location = /ip/echo {
            pairguard ip;
            proxy_pass http://backend/echo;
        }
    }
}
CONF

my $port = $ng->port;

# what the guard read as pairing_code ('' when empty), and the response
sub seen ($body, %o) {
    my $r = http($port, $o{method} // 'POST', '/echo', body => $body, %o);
    my $code = $r->{status} == 200 ? ($r->{json}{headers}{'x-seen-code'} // '') : undef;
    return ($code, $r);
}
sub ctype ($t) { (headers => [['Content-Type', $t]]) }

# --- JSON and form bodies --------------------------------------------------

my ($c, $r) = seen('{"pairing_code":"123456"}', ctype('application/json'));
is($c, '123456', 'a JSON body gives the field');
($c) = seen('{"pairing_code":"123457"}', ctype('application/json; charset=utf-8'));
is($c, '123457', 'a JSON body with a charset parameter gives the field');
($c) = seen('{"pairing_code":"123458"}', ctype('APPLICATION/JSON'));
is($c, '123458', 'the media type is matched without regard to case');
($c) = seen('{"pairing_code":"123459"}', ctype('application/json ;charset=UTF-8'));
is($c, '123459', 'spaces around the parameter separator are allowed');
($c) = seen('{"pairing_code":"123460"}', headers => [['content-type', 'application/json']]);
is($c, '123460', 'a lower-case header name is the same header');
($c, $r) = seen('{"pairing_code":"123461","name":"x"}');
is($c, '123461', 'a body starting with { and no Content-Type is read as JSON');
is($r->{json}{body}, '{"pairing_code":"123461","name":"x"}', 'and reaches the upstream unchanged');
($c) = seen('name=x&pairing_code=123462');
is($c, '123462', 'a body without Content-Type and not starting with { is read as a form');
($c) = seen('pairing_code=12+34%2056&name=a', ctype('application/x-www-form-urlencoded'));
is($c, '12 34 56', 'form fields are URL-decoded (+ and %20 are spaces)');
($c, $r) = seen('{"pairing_code":"123463"}', ctype('text/plain'));
is($r->{status}, 415, 'a body of another content type is refused with 415');
is_deeply($r->{json}, { error => 'unsupported_body' }, '  as unsupported_body');
($c) = seen("--x\r\nContent-Disposition: form-data; name=\"pairing_code\"\r\n\r\n123464\r\n--x--\r\n",
            ctype('multipart/form-data; boundary=x'));
is($c, '123464', 'a text part of a multipart form gives the field');

($c) = seen('{"pairing_code":483920}', ctype('application/json'));
is($c, '483920', 'a JSON number gives its text');
($c) = seen('{"pairing_code":true}', ctype('application/json'));
is($c, 'true', 'a JSON true gives "true"');
($c) = seen('{"pairing_code":null}', ctype('application/json'));
is($c, '', 'a JSON null gives an empty field');
# an array or an object has no key value, but a backend may read one out of
# it: refused (t/guard_body_ambiguous.t), never an empty key
($c, $r) = seen('{"pairing_code":["1"]}', ctype('application/json'));
is("$r->{status} " . ($r->{json}{error} // ''), '400 invalid_body', 'a JSON array as the key field is refused');
($c, $r) = seen('{"pairing_code":{"a":"1"}}', ctype('application/json'));
is("$r->{status} " . ($r->{json}{error} // ''), '400 invalid_body', 'a JSON object as the key field is refused');
($c) = seen('{"device":{"pairing_code":"999999"},"pairing_code":"123464"}', ctype('application/json'));
is($c, '123464', 'only the top-level field counts');
($c) = seen('{"device":{"pairing_code":"999999"}}', ctype('application/json'));
is($c, '', 'a nested field of the same name is not the field');
($c) = seen('{"pairing_code":"12\u00334"}', ctype('application/json'));
is($c, '1234', 'JSON string escapes are decoded');
($c) = seen('{}', ctype('application/json'));
is($c, '', 'an empty object gives an empty field and the request goes on');

# --- bodies that come in pieces --------------------------------------------

($c) = seen('{"pairing_code":"123465"}', ctype('application/json'), split => 0.3);
is($c, '123465', 'a body that arrives after a pause is waited for');
($c, $r) = seen('{"pairing_code":"123466"}', ctype('application/json'), chunked => 1);
is($c, '123466', 'a chunked body gives the field');
is(($r->{json} // {})->{body}, '{"pairing_code":"123466"}', 'and reaches the upstream whole');
($c) = seen('{"pairing_code":"123467"}', headers => [['Content-Type', 'application/json'], ['Expect', '100-continue']]);
is($c, '123467', 'Expect: 100-continue is honoured');
($c, $r) = seen(undef, method => 'GET');
is($r->{status}, 200, 'a GET without a body is not refused');
is($c, '', 'and its field is empty');
($c, $r) = seen('');
is($r->{status}, 200, 'a POST with an empty body is not refused');

# --- bodies the guard cannot use -------------------------------------------

$up->reset;
for my $case (
    ['{"pairing_code":"1234', 'application/json', 'truncated JSON'],
    ['["123456"]', 'application/json', 'a JSON array'],
    ['"123456"', 'application/json', 'a JSON string'],
    ['{"pairing_code":"1"} trailing', 'application/json', 'JSON followed by garbage'],
    ['{pairing_code: 1}', undef, 'a {-body without Content-Type that is not JSON'],
) {
    my ($body, $type, $what) = @$case;
    $r = http($port, 'POST', '/echo', body => $body, $type ? ctype($type) : ());
    is($r->{status}, 400, "$what is refused with 400");
    is_deeply($r->{json}, { error => 'invalid_body' }, "$what: the body says invalid_body");
}
is($up->count, 0, 'the upstream never saw an unparseable body');

my $big = '{"pairing_code":"123468","pad":"' . ('x' x 4096) . '"}';
($c, $r) = seen($big, ctype('application/json'));
is($c, '123468', 'a body larger than client_body_buffer_size is read back from its file');
is(($r->{json} // {})->{body}, $big, '  and the upstream gets it whole');

$up->reset;
my $huge = '{"pairing_code":"123469","pad":"' . ('x' x (1024 * 1024 + 10)) . '"}';
$r = http($port, 'POST', '/echo', body => $huge, ctype('application/json'));
is($r->{status}, 413, 'a body larger than the 1 MiB the guard parses is refused with 413');
is_deeply($r->{json}, { error => 'body_too_large' }, 'with the body_too_large body');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'as JSON');
is($up->count, 0, 'the upstream never saw the huge body');

$r = http($port, 'POST', '/ip/echo', body => $big, ctype('application/json'));
is($r->{status}, 200, 'a location whose keys do not need the body lets a large body through');
is(($r->{json} // {})->{body}, $big, 'and the upstream gets it whole');

done();
