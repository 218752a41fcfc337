module github.com/algapsa/alga-google/services/gmail

go 1.26.8
