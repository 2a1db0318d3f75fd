module github.com/nsqclone/nsq

go 1.26
