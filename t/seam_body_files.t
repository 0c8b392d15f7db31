# Reading the body for a key keeps the location's own body settings: a
# location that keeps bodies in files (client_body_in_file_only, WebDAV PUT)
# still gets its file and $request_body_file, and an unbuffered upload in a
# location whose keys do not need the body is left alone.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
mkdir testdir() . '/dav';
chmod 0777, testdir() . '/dav';    # the workers' user writes there
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy code key=$pairguard_body_code max_failures=3 window=30s lockout=30s;
    pairguard_policy ip   key=$remote_addr max_failures=100 window=30s lockout=30s;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /file-only {
            pairguard code;
            client_body_in_file_only clean;
            proxy_set_header X-Body-File $request_body_file;
            rewrite ^ /echo break;
            proxy_pass http://backend;
        }

        location /dav/ {
            root %%TESTDIR%%;
            dav_methods PUT DELETE;
            pairguard code;
            pairguard_failure_status 404;
        }

        location = /stream {
            pairguard ip;
            proxy_request_buffering off;
            proxy_http_version 1.1;
            rewrite ^ /echo break;
            proxy_pass http://backend;
        }
    }
}
CONF
my $port = $ng->port;
my $json = ['Content-Type', 'application/json'];

my $r = http($port, 'POST', '/file-only', body => '{"code":"111"}', headers => [$json]);
is($r->{status}, 200, 'a location with client_body_in_file_only and a body key answers');
like($r->{json}{headers}{'x-body-file'} // '', qr{client_body_temp/\d+$}, '  and $request_body_file names its file');
is($r->{json}{body}, '{"code":"111"}', '  and the upstream gets the body');

$r = http($port, 'PUT', '/dav/note.json', body => '{"code":"222"}', headers => [$json]);
is($r->{status}, 201, 'a WebDAV PUT in a location with a body key creates the file');
is(read_file(testdir() . '/dav/note.json'), '{"code":"222"}', '  with the body as its content');

$r = http($port, 'PUT', '/dav/note.json', body => '{"code":"222"}', headers => [$json]);
is($r->{status}, 204, '  and overwriting it answers 204');

my $big = 'x' x 200000;
$r = http($port, 'POST', '/stream', body => $big, headers => [['Content-Type', 'application/octet-stream']]);
is($r->{status}, 200, 'an unbuffered upload without a body key passes');
is(length($r->{json}{body} // ''), 200000, '  whole');

done();
